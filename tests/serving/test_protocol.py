"""The httptools protocol's answer transport: an answer's head goes out with its body."""

from __future__ import annotations

from serving.protocol import _HeadWithBody


class Recorded:
    """A transport that records its writes and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_the_head_is_written_with_the_first_part_of_the_body() -> None:
    wire = Recorded()
    transport = _HeadWithBody(wire)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert wire.writes == []
    transport.write(b"{}")
    transport.write(b"more")
    assert wire.writes == [HEAD + b"{}", b"more"]


def test_an_empty_body_still_carries_the_head() -> None:
    wire = Recorded()
    transport = _HeadWithBody(wire)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    transport.write(b"")
    assert wire.writes == [b"HTTP/1.1 204 No Content\r\n\r\n"]


def test_a_100_continue_is_not_held() -> None:
    wire = Recorded()
    transport = _HeadWithBody(wire)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert wire.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    transport.write(HEAD)
    transport.write(b"{}")
    assert wire.writes[1:] == [HEAD + b"{}"]


def test_a_head_held_when_the_connection_closes_is_written_first() -> None:
    wire = Recorded()
    transport = _HeadWithBody(wire)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert not transport.is_closing()  # everything else is the connection's own
    transport.close()
    assert wire.writes == [HEAD] and wire.closed
