"""A pre-fork HTTP server, the shape of Apache prefork, gunicorn or nginx's master/workers.

Usage: prefork_http_server.py ADDRESS PORT DIRECTORY WORKERS

The parent creates the listening socket (socketserver's bind and listen), then forks WORKERS
children and only waits for them: it never accepts. Each child runs `serve_forever` on the
inherited listener (a poll on it, then accept) and serves DIRECTORY with http.server's
handler, naming itself in an `X-Worker-Pid` header on every response.

Printed on stdout: `worker PID` for each child forked (by the parent), `worker PID exits
STATUS` when one ends; the parent exits when every child has, with status 1 if any child
failed. A child dies with its parent (PR_SET_PDEATHSIG), so killing the parent leaves no
worker behind.
"""

import ctypes
import functools
import http.server
import os
import signal
import socket
import socketserver
import sys

PR_SET_PDEATHSIG = 1


class Handler(http.server.SimpleHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so each connection is one sample of which worker
    # the connection reached.
    protocol_version = "HTTP/1.0"

    def end_headers(self):
        self.send_header("X-Worker-Pid", str(os.getpid()))
        super().end_headers()

    def log_message(self, format, *args):
        pass


class Server(socketserver.TCPServer):
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that goes away mid-download is not the worker's failure; show it and serve on.
        print(f"worker {os.getpid()}: error serving {client_address}", file=sys.stderr, flush=True)
        super().handle_error(request, client_address)


def serve(server):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    try:
        server.serve_forever(poll_interval=0.5)
    except BaseException as e:  # noqa: B902 - any end of a worker is reported
        print(f"worker {os.getpid()}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


def main():
    address, port, directory, workers = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    handler = functools.partial(Handler, directory=directory)
    if ":" in address:
        Server.address_family = socket.AF_INET6
    server = Server((address, port), handler)
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            serve(server)
        pids.append(pid)
        print(f"worker {pid}", flush=True)
    failed = False
    while pids:
        pid, status = os.wait()
        pids.remove(pid)
        code = os.waitstatus_to_exitcode(status)
        print(f"worker {pid} exits {code}", flush=True)
        failed |= code != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
