//! How much life a handed-out token must have left (`ACR_MIN_VALIDITY`), and what a token of a
//! given lifetime can be held to.
//!
//! A cache entry is refreshed when a third of its lifetime remains (one hour for ACR's 3-hour
//! tokens) or when less than the minimum remains, whichever comes first. The default minimum
//! (60 minutes) never moves that refresh point: it is held to at most a third of the lifetime, so
//! it states what ACR's tokens already give. An explicit one is held to at most five sixths of the
//! lifetime, so that a new token is handed out for a while before the next refresh.

/// The default minimum, seconds.
pub const DEFAULT_MIN_VALIDITY: i64 = 3600;
/// The largest minimum accepted, seconds (no registry token lives longer than hours).
const MAX_MIN_VALIDITY: i64 = 24 * 3600;

/// The minimum remaining life of a handed-out token, and whether it was set explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinValidity {
    /// The minimum, seconds.
    pub seconds: i64,
    /// Set by `ACR_MIN_VALIDITY` (then strict: see [`MinValidity::strict`]), not the default.
    pub explicit: bool,
}

impl Default for MinValidity {
    fn default() -> Self {
        MinValidity {
            seconds: DEFAULT_MIN_VALIDITY,
            explicit: false,
        }
    }
}

impl MinValidity {
    /// The `ACR_MIN_VALIDITY` value: `90m`, `2h`, `3600s` or plain seconds; the error is the one
    /// line that says what is wrong.
    pub fn parse(value: &str) -> Result<MinValidity, String> {
        let bad = || {
            format!(
                "ACR_MIN_VALIDITY={:?} is not a duration such as 90m, 2h or 3600s (at most 24h)",
                value.trim()
            )
        };
        let v = value.trim().to_ascii_lowercase();
        let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => v.split_at(i),
            None => (v.as_str(), "s"),
        };
        let scale = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            _ => return Err(bad()),
        };
        let seconds = digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|s| (0..=MAX_MIN_VALIDITY).contains(s))
            .ok_or_else(bad)?;
        Ok(MinValidity {
            seconds,
            explicit: true,
        })
    }

    /// The minimum a token issued for `lifetime` seconds is held to (see the module's doc).
    pub fn effective(self, lifetime: i64) -> i64 {
        let lifetime = lifetime.clamp(0, crate::token::MAX_LIFETIME);
        let most = if self.explicit {
            lifetime - lifetime / 6
        } else {
            lifetime / 3
        };
        self.seconds.min(most)
    }

    /// Whether an explicit minimum is more than a token of `lifetime` can meet (so it is held to
    /// less).
    pub fn clamped(self, lifetime: i64) -> bool {
        self.explicit && self.effective(lifetime) < self.seconds
    }

    /// Whether a cached token with less left than the minimum must not be handed out even when
    /// a refresh fails (explicit), or is handed out with a warning as long as it is usable (the
    /// default).
    pub fn strict(self) -> bool {
        self.explicit
    }

    /// Where it comes from, for `doctor`: `default` or `ACR_MIN_VALIDITY`.
    pub fn origin(self) -> &'static str {
        if self.explicit {
            "ACR_MIN_VALIDITY"
        } else {
            "default"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_seconds_minutes_and_hours() {
        for (v, s) in [
            ("90m", 5400),
            ("2h", 7200),
            ("3600s", 3600),
            (" 600 ", 600),
            ("0", 0),
        ] {
            assert_eq!(MinValidity::parse(v).unwrap().seconds, s, "{v}");
        }
        for v in [
            "",
            "m",
            "1.5h",
            "-5m",
            "2d",
            "25h",
            "9999999999999999999h",
            "1h30m",
        ] {
            let e = MinValidity::parse(v).unwrap_err();
            assert!(e.contains("ACR_MIN_VALIDITY") && !e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn the_default_never_moves_the_refresh_point_and_an_explicit_one_is_clamped() {
        let default = MinValidity::default();
        assert_eq!(default.effective(3 * 3600), 3600);
        assert_eq!(default.effective(3600), 1200);
        assert!(!default.clamped(3600));
        let two_hours = MinValidity::parse("2h").unwrap();
        assert_eq!(two_hours.effective(3 * 3600), 7200);
        assert!(!two_hours.clamped(3 * 3600));
        assert_eq!(two_hours.effective(3600), 3000);
        assert!(two_hours.clamped(3600));
        assert_eq!(two_hours.effective(-5), 0);
    }
}
