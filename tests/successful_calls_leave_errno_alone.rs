//! A call that succeeds leaves errno as it was, as glibc's wrappers do: programs read errno
//! after a non-negative result. CPython's select.poll/epoll loop does `errno = 0; r = poll();
//! if (errno != EINTR) break; PyErr_CheckSignals()` and then returns r's list with
//! KeyboardInterrupt set (SystemError) when a successful poll leaves EINTR behind, which is how
//! a SIGINT to python's http.server on LKL ended in "SystemError: <method 'poll' of
//! 'select.poll' objects> returned a result with an exception set" instead of a clean exit.
//!
//! The program below polls a listening socket (nothing ever ready: each poll times out, 0)
//! while another thread keeps the socket layer busy (contention inside the library) and a
//! third sends it signals through a handler without SA_RESTART; it counts successful polls
//! after which errno is no longer 0. On the host stack that count is 0.

mod common;

use std::path::PathBuf;

use common::{build_c, check_output, command_in, lkl_env, venet, CSource};
use lkl_rig::Topology;

const PROGRAM: &str = r#"
#define _GNU_SOURCE /* strerrorname_np */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static pthread_t main_thread;
static volatile int stop;
static int interval_us;
static struct sockaddr_in addr;

static void on_signal(int s) { (void)s; }

/* SIGUSR1 at the polling thread every interval_us. */
static void *pester(void *unused)
{
	(void)unused;
	while (!stop) {
		pthread_kill(main_thread, SIGUSR1);
		usleep(interval_us);
	}
	return NULL;
}

/* Sockets opened, bound, listened on and closed in a loop: the socket layer stays busy. */
static void *busy(void *unused)
{
	(void)unused;
	while (!stop) {
		struct sockaddr_in a = addr;
		int s = socket(AF_INET, SOCK_STREAM, 0);

		a.sin_port = 0;
		bind(s, (struct sockaddr *)&a, sizeof(a));
		listen(s, 1);
		close(s);
	}
	return NULL;
}

/* ADDR TIMEOUT_MS CALLS SIGNAL_INTERVAL_US: prints "calls=N ok=N eintr=N clobbered=N errnos=E,E,..." */
int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART, as python's */
	int s = socket(AF_INET, SOCK_STREAM, 0);
	int timeout = atoi(argv[2]), calls = atoi(argv[3]);
	int ok = 0, eintr = 0, clobbered = 0, seen[256] = { 0 };
	pthread_t t1, t2;

	addr.sin_family = AF_INET;
	addr.sin_port = htons(9000);
	inet_pton(AF_INET, argv[1], &addr.sin_addr);
	if (bind(s, (struct sockaddr *)&addr, sizeof(addr)) || listen(s, 8)) {
		perror("bind/listen");
		return 1;
	}
	sigaction(SIGUSR1, &sa, NULL);
	main_thread = pthread_self();
	interval_us = atoi(argv[4]);
	pthread_create(&t1, NULL, pester, NULL);
	pthread_create(&t2, NULL, busy, NULL);
	for (int i = 0; i < calls; i++) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		int r;

		errno = 0;
		r = poll(&p, 1, timeout);
		if (r >= 0) {
			ok++;
			if (errno) {
				clobbered++;
				seen[errno & 255] = 1;
			}
		} else if (errno == EINTR) {
			eintr++;
		}
	}
	stop = 1;
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	printf("calls=%d ok=%d eintr=%d clobbered=%d errnos=", calls, ok, eintr, clobbered);
	for (int e = 1; e < 256; e++)
		if (seen[e])
			printf("%s,", strerrorname_np(e) ? strerrorname_np(e) : "?");
	printf("\n");
	return 0;
}
"#;

fn build() -> PathBuf {
    build_c("errno_after_success", CSource::Text(PROGRAM))
}

/// The counts the program printed, by name.
fn counts(stdout: &str) -> impl Fn(&str) -> u64 + '_ {
    move |name| {
        stdout
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {stdout:?}"))
    }
}

/// Runs the program in the container on `addr` (the host stack's or LKL's, by `env`) and
/// returns its counts line.
fn run(
    topo: &dyn Topology,
    program: &str,
    addr: &str,
    args: [&str; 3],
    env: &[(String, String)],
) -> String {
    let [timeout, calls, interval] = args;
    check_output(&mut command_in(
        topo.container_ns(),
        program,
        &[addr, timeout, calls, interval],
        env,
    ))
}

#[test]
fn successful_polls_under_contention_and_signals_leave_errno_unchanged() {
    let program = build();
    let program = program.to_str().unwrap();
    let topo = venet();
    let (host_v4, lkl_v4) = (
        topo.addrs().host_v4.to_string(),
        topo.addrs().lkl_v4.to_string(),
    );
    // No firewall: every listen of the busy thread would run nft, and slow it down.
    let mut env = lkl_env(&topo);
    env.push(("LKL_HIJACK_FIREWALL".into(), "off".into()));
    let cases = [
        // 2 ms timeouts, signals only every second: contention alone.
        ("contention", ["2", "1000", "1000000"]),
        // No waiting, a signal every 200 µs: signals landing inside the library's calls.
        ("contention and signals", ["0", "50000", "200"]),
    ];
    for (what, args) in cases {
        let host = run(&topo, program, &host_v4, args, &[]);
        assert_eq!(counts(&host)("clobbered"), 0, "host stack, {what}: {host}");
        let lkl = run(&topo, program, &lkl_v4, args, &env);
        let n = counts(&lkl);
        assert!(
            n("ok") >= n("calls") / 2,
            "{what}: too few polls completed to judge: {lkl}"
        );
        assert_eq!(
            n("clobbered"),
            0,
            "on LKL, {what}: successful poll()s changed errno (EINTR is what breaks CPython): {lkl}"
        );
    }
}
