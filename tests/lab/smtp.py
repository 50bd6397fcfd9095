"""A real SMTP server (aiosmtpd) for a lab host: each message is saved as a .eml file.

usage: smtp.py ADDRESS PORT FOLDER          a working relay
       smtp.py --hang ADDRESS PORT          accepts connections and never says a word
"""

import asyncio
import socket
import sys
import time
from pathlib import Path


class SaveHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.count += 1
        path = self.folder / f"{self.count:04d}.eml"
        path.with_suffix(".tmp").write_bytes(envelope.original_content)
        path.with_suffix(".tmp").rename(path)
        (self.folder / f"{self.count:04d}.rcpt").write_text("\n".join(envelope.rcpt_tos))
        return "250 OK"


def main() -> None:
    if sys.argv[1] == "--hang":
        listener = socket.create_server((sys.argv[2], int(sys.argv[3])))
        print("listening", flush=True)
        held = []
        while True:
            connection, _ = listener.accept()
            held.append(connection)
            time.sleep(0.1)
    from aiosmtpd.controller import Controller

    controller = Controller(SaveHandler(Path(sys.argv[3])), hostname=sys.argv[1],
                            port=int(sys.argv[2]))  # fmt: skip
    controller.start()
    print("listening", flush=True)
    asyncio.run(asyncio.sleep(3600))


if __name__ == "__main__":
    main()
