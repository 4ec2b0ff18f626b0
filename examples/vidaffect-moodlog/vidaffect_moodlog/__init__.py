"""vidaffect-moodlog: the dominant emotion per time window, as CSV."""
