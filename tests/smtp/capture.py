"""A real SMTP server that captures mail, for the e-mail tests.

Usage: capture.py PORT DIRECTORY

Listens on 127.0.0.1:PORT (aiosmtpd) and writes each message it receives, exactly
as received, to DIRECTORY/NNNN.eml (written to a temporary name first, then renamed,
so a reader never sees half a file). The envelope goes to NNNN.envelope as JSON.
Prints "ready" once listening; stops on SIGTERM or SIGINT.
"""

import json
import os
import signal
import sys
import threading

from aiosmtpd.controller import Controller


class Capture:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = "%04d" % self.count
        path = os.path.join(self.directory, name)
        with open(path + ".envelope.tmp", "w") as out:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos}, out)
        os.rename(path + ".envelope.tmp", path + ".envelope")
        with open(path + ".tmp", "wb") as out:
            out.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path + ".eml")
        return "250 OK captured"


def main():
    port = int(sys.argv[1])
    directory = sys.argv[2]
    os.makedirs(directory, exist_ok=True)
    controller = Controller(Capture(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
