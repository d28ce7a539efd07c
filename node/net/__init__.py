"""Peer network of a node: authenticated, encrypted websocket links between nodes.

``Transport`` is the entry point: it listens on the node's p2p address, dials
configured peers persistently, runs a mutually authenticated handshake on every
link (``handshake``/``session``), encrypts every frame (``cipher``), and hands
decrypted frame bytes to its owner. Decoding frames into messages, gossip and
block sync are the owner's job; they report malformed content back with
``Transport.penalise``.
"""

from node.net.codes import CloseCode
from node.net.peers import Direction, PeerInfo
from node.net.transport import Transport

__all__ = ["CloseCode", "Direction", "PeerInfo", "Transport"]
