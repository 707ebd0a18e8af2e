//! Forwarder counters and their text form (`key value` lines, the stats file format).

use std::fmt::Write as _;

use super::link::Switches;

macro_rules! dir_stats {
    ($($(#[$doc:meta])* $field:ident),* $(,)?) => {
        /// Counters of one direction of the link.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct DirStats {
            $($(#[$doc])* pub $field: u64,)*
        }

        impl DirStats {
            fn fields(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($field), self.$field)),*].into_iter()
            }

            fn field_mut(&mut self, name: &str) -> Option<&mut u64> {
                match name {
                    $(stringify!($field) => Some(&mut self.$field),)*
                    _ => None,
                }
            }
        }
    };
}

dir_stats! {
    /// Packets read from the source device.
    received,
    /// Packets written to the destination device (a duplicated packet counts twice).
    forwarded,
    /// Bytes written to the destination device.
    bytes,
    /// Packets dropped by random loss.
    lost,
    /// Packets dropped by burst loss.
    burst_lost,
    /// Packets dropped because the queue (rate limiter backlog or delay line) was full.
    overflow,
    /// Packets dropped while the blackhole was on.
    blackholed,
    /// Packets sent twice.
    duplicated,
    /// Packets held back behind the next one.
    reordered,
    /// Writes the destination device refused.
    tx_errors,
}

impl DirStats {
    /// Packets dropped by the link emulation (random + burst loss).
    pub fn dropped(&self) -> u64 {
        self.lost + self.burst_lost
    }
}

/// All counters of a forwarder. Direction `a2b` carries packets read from endpoint A (in the
/// venet topology: the container's `venet0`) to endpoint B (the peer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Number of the stats dump (increases with every dump of the same forwarder).
    pub seq: u64,
    /// The blackhole and fault switches at the time of the dump.
    pub switches: Switches,
    pub a2b: DirStats,
    pub b2a: DirStats,
}

impl Stats {
    /// The stats file text: one `key value` per line.
    pub fn render(&self) -> String {
        let mut out = format!(
            "seq {}\nblackhole {}\nfaults {}\n",
            self.seq,
            u8::from(self.switches.blackhole),
            u8::from(self.switches.faults)
        );
        for (dir, stats) in [("a2b", &self.a2b), ("b2a", &self.b2a)] {
            for (name, value) in stats.fields() {
                // Writing to a String cannot fail.
                let _ = writeln!(out, "{dir}.{name} {value}");
            }
        }
        out
    }

    /// One summary line per direction, for stderr.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (dir, stats) in [("a2b", &self.a2b), ("b2a", &self.b2a)] {
            let _ = write!(out, "lkl-forwarder: {dir}");
            for (name, value) in stats.fields() {
                let _ = write!(out, " {name}={value}");
            }
            out.push('\n');
        }
        out
    }

    /// Parses [`Stats::render`]'s output.
    pub fn parse(text: &str) -> Result<Stats, String> {
        let mut stats = Stats::default();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| format!("bad stats line {line:?}: expected `key value`"))?;
            let value: u64 = value
                .trim()
                .parse()
                .map_err(|_| format!("bad stats line {line:?}: value is not a number"))?;
            let slot = match key.split_once('.') {
                None if key == "seq" => &mut stats.seq,
                None if key == "blackhole" => {
                    stats.switches.blackhole = value != 0;
                    continue;
                }
                None if key == "faults" => {
                    stats.switches.faults = value != 0;
                    continue;
                }
                Some(("a2b", name)) => stats
                    .a2b
                    .field_mut(name)
                    .ok_or_else(|| format!("unknown stats key {key:?}"))?,
                Some(("b2a", name)) => stats
                    .b2a
                    .field_mut(name)
                    .ok_or_else(|| format!("unknown stats key {key:?}"))?,
                _ => return Err(format!("unknown stats key {key:?}")),
            };
            *slot = value;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_and_parse_round_trip() {
        let mut stats = Stats {
            seq: 7,
            switches: Switches {
                blackhole: true,
                faults: false,
            },
            ..Stats::default()
        };
        stats.a2b.received = 10;
        stats.a2b.lost = 2;
        stats.b2a.tx_errors = 3;
        assert_eq!(Stats::parse(&stats.render()), Ok(stats));
    }

    #[test]
    fn parse_rejects_unknown_keys() {
        assert!(Stats::parse("a2b.bogus 1")
            .unwrap_err()
            .contains("a2b.bogus"));
        assert!(Stats::parse("seq x").is_err());
    }
}
