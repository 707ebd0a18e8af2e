//! The rx thread: while the device is armed it waits for the socket to become readable, then
//! disarms it and raises the device's irq; the kernel's poll then reads the packets (`rx.rs`)
//! and re-arms it.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{sys, PacketBackend};
use crate::netdev::Irq;

/// Whether the kernel waits for an irq (armed) and whether the rx thread must end.
pub(super) struct RxState {
    armed: bool,
    stopping: bool,
}

impl RxState {
    /// Armed: packets that arrive before the kernel first polls raise the irq.
    pub(super) fn new() -> RxState {
        RxState {
            armed: true,
            stopping: false,
        }
    }
}

impl PacketBackend {
    /// Starts the rx thread, which raises `irq` when a packet waits while the device is armed.
    /// Call once, after registering the device.
    pub fn start_rx(self: &Arc<Self>, irq: Irq) -> io::Result<()> {
        let me = Arc::clone(self);
        let handle =
            crate::host_ops::spawn_library_thread("lkl-packet-rx", move || me.rx_loop(irq))?;
        *self.rx_thread.lock() = Some(handle);
        Ok(())
    }

    /// Ends the rx thread and waits for it. Must happen before the kernel halts (the thread
    /// raises irqs); the socket stays open until the backend is dropped.
    pub fn stop_rx(&self) {
        self.rx.lock().stopping = true;
        self.rx_cond.notify_all();
        if let Err(e) = sys::eventfd_signal(&self.stop_fd) {
            log::error!(target: "lkl", "packet backend: waking the rx thread: {e}");
        }
        if let Some(handle) = self.rx_thread.lock().take() {
            // A panic there was already reported by the panic hook.
            let _ = handle.join();
        }
    }

    fn rx_loop(&self, irq: Irq) {
        loop {
            {
                let mut state = self.rx.lock();
                while !state.armed && !state.stopping {
                    self.rx_cond.wait(&mut state);
                }
                if state.stopping {
                    return;
                }
            }
            let mut fds = [
                libc::pollfd {
                    fd: self.sock.raw(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.stop_fd.raw(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            match sys::ppoll(&mut fds, None) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!(target: "lkl", "packet backend: poll: {e}; rx stops");
                    return;
                }
            }
            if fds[1].revents != 0 {
                return;
            }
            if fds[0].revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
                log::error!(target: "lkl", "packet backend: socket error; rx stops");
                return;
            }
            if fds[0].revents & libc::POLLIN != 0 {
                // Disarm before the irq: the kernel re-arms (rx_arm) once it has drained the
                // socket, possibly before trigger() returns.
                self.rx.lock().armed = false;
                self.counters.rx_irqs.fetch_add(1, Ordering::Relaxed);
                irq.trigger();
            }
        }
    }

    /// The kernel has drained the socket and waits for the irq again.
    pub(super) fn arm_rx(&self) {
        self.rx.lock().armed = true;
        self.rx_cond.notify_one();
    }
}
