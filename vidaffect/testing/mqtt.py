"""A real mosquitto broker on 127.0.0.1 and a recording MQTT subscriber, for tests and
benchmarks of the ``mqtt`` sink (Debian: ``apt install mosquitto``; it is started here, by
PID, never as a service)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from vidaffect.runtime.transport import free_tcp_port
from vidaffect.testing.probe import wait_until


def mosquitto_path() -> str | None:
    """The mosquitto executable (Debian installs it in /usr/sbin), None when missing."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return exe if Path(exe).exists() else None


class Broker:
    """mosquitto on 127.0.0.1:``port`` with TCP_NODELAY and no persistence (a restart forgets
    retained messages), started and stopped by PID."""

    def __init__(self, folder: Path, port: int | None = None, nodelay: bool = True) -> None:
        self.port = port or free_tcp_port()
        self.conf = folder / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"set_tcp_nodelay {'true' if nodelay else 'false'}\npersistence false\nlog_dest stderr\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        exe = mosquitto_path()
        if exe is None:
            raise FileNotFoundError("mosquitto is not installed (Debian: apt install mosquitto)")
        self.proc = subprocess.Popen(
            [exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        wait_until(self.accepts, f"mosquitto on port {self.port}")
        return self

    def accepts(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"mosquitto exited: {err}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


class Recorder:
    """A real MQTT client subscribed to ``topic``, recording ``(topic, payload, retain)``."""

    def __init__(self, port: int, topic: str = "#") -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise AssertionError("the test subscriber did not get its SUBACK")

    def _on_message(self, client: object, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, topic: str) -> list[tuple[bytes, bool]]:
        with self.lock:
            return [(p, r) for t, p, r in self.messages if t == topic]

    def last(self, topic: str) -> bytes | None:
        got = self.on(topic)
        return got[-1][0] if got else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
