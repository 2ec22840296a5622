#!/usr/bin/env python3
"""A Salam webhook receiver: checks the signature and the replay window, drops
duplicates by event id, and prints each new event as one JSON line.

Standard library only. Run it with the endpoint's secret (during a rotation, both
secrets, comma separated):

    SALAM_WEBHOOK_SECRETS=whsec_... python3 webhook_receiver.py 8000

The end-to-end tests run this very file as a receiver (tests/tests/webhooks).
"""

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRETS = [s.strip() for s in os.environ.get("SALAM_WEBHOOK_SECRETS", "").split(",") if s.strip()]
REPLAY_WINDOW_SECS = 300  # refuse signatures older (or newer) than five minutes
SEEN = set()  # event ids already handled (keep them in your database in real life)


def verify(headers, body: bytes) -> bool:
    """True when one `v1=` of Salam-Signature matches one of SECRETS."""
    timestamp = headers.get("Salam-Webhook-Timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > REPLAY_WINDOW_SECS:
        return False
    signed = timestamp.encode() + b"." + body  # the raw bytes, never re-serialised JSON
    given = [part.strip()[3:] for part in headers.get("Salam-Signature", "").split(",")
             if part.strip().startswith("v1=")]
    for secret in SECRETS:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, signature) for signature in given):
            return True
    return False


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if not verify(self.headers, body):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        if event["id"] not in SEEN:  # at least once: the same id may come again
            SEEN.add(event["id"])
            print(json.dumps(event), flush=True)
        self.send_response(204)  # any 2xx means delivered
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    server = ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
