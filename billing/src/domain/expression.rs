//! Syntax check of a billable metric's `expression`, the small language Lago evaluates per event:
//! numbers, 'strings', `event.timestamp`, `event.code`, `event.properties.<name>`, `+ - * /`, unary minus,
//! parentheses and the functions `ceil`, `floor`, `round` (one or two arguments), `concat`, `least`, `greatest`.
//! Function names may be lower case, upper case or capitalised; only the space character separates tokens.
//!
//! Only validation lives here; evaluation comes with aggregation.

/// True when `source` is one whole, well-formed expression.
pub fn is_valid(source: &str) -> bool {
    let mut p = Parser { s: source.as_bytes(), pos: 0 };
    p.expr() && {
        p.spaces();
        p.pos == p.s.len()
    }
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn spaces(&mut self) {
        while self.s.get(self.pos) == Some(&b' ') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.spaces();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.spaces();
        self.s.get(self.pos).copied()
    }

    fn expr(&mut self) -> bool {
        if !self.term() {
            return false;
        }
        while matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
            if !self.term() {
                return false;
            }
        }
        true
    }

    fn term(&mut self) -> bool {
        if !self.unary() {
            return false;
        }
        while matches!(self.peek(), Some(b'*' | b'/')) {
            self.pos += 1;
            if !self.unary() {
                return false;
            }
        }
        true
    }

    fn unary(&mut self) -> bool {
        if self.eat(b'-') { self.unary() } else { self.primary() }
    }

    fn primary(&mut self) -> bool {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                self.expr() && self.eat(b')')
            }
            Some(b'\'') => self.string(),
            Some(c) if c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() => self.name(),
            _ => false,
        }
    }

    fn number(&mut self) -> bool {
        let digits = |p: &mut Self| {
            let start = p.pos;
            while p.s.get(p.pos).is_some_and(u8::is_ascii_digit) {
                p.pos += 1;
            }
            p.pos > start
        };
        if !digits(self) {
            return false;
        }
        if self.s.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            return digits(self);
        }
        true
    }

    fn string(&mut self) -> bool {
        self.pos += 1;
        while let Some(&c) = self.s.get(self.pos) {
            self.pos += 1;
            if c == b'\'' {
                return true;
            }
        }
        false
    }

    fn ident(&mut self) -> &str {
        let start = self.pos;
        if self.s.get(self.pos).is_some_and(u8::is_ascii_alphabetic) {
            self.pos += 1;
            while self.s.get(self.pos).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                self.pos += 1;
            }
        }
        std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("")
    }

    /// A variable (`event.…`) or a function call.
    fn name(&mut self) -> bool {
        let word = self.ident().to_owned();
        if word == "event" {
            if self.s.get(self.pos) != Some(&b'.') {
                return false;
            }
            self.pos += 1;
            return match self.ident() {
                "timestamp" | "code" => true,
                "properties" => {
                    if self.s.get(self.pos) != Some(&b'.') {
                        return false;
                    }
                    self.pos += 1;
                    !self.ident().is_empty()
                }
                _ => false,
            };
        }
        let Some(function) = function_name(&word) else { return false };
        if !self.eat(b'(') {
            return false;
        }
        let mut args = 0;
        if self.peek() != Some(b')') {
            loop {
                if !self.expr() {
                    return false;
                }
                args += 1;
                if !self.eat(b',') {
                    break;
                }
            }
        }
        if !self.eat(b')') {
            return false;
        }
        match function {
            "ceil" | "floor" | "round" => (1..=2).contains(&args),
            _ => args >= 1,
        }
    }
}

/// The canonical name when `word` is a known function written in an accepted case.
fn function_name(word: &str) -> Option<&'static str> {
    ["ceil", "floor", "round", "concat", "least", "greatest"].into_iter().find(|f| {
        let mut capitalised = f.to_string();
        capitalised[..1].make_ascii_uppercase();
        word == *f || word == f.to_ascii_uppercase() || word == capitalised
    })
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn accepts_lago_examples() {
        for ok in [
            "round((event.properties.ended_at - event.properties.started_at) * event.properties.units)",
            "event.properties.gb * 1024",
            "ceil(event.properties.x, 2)",
            "ROUND(event.properties.x)",
            "Floor(1.5)",
            "concat(event.code, '-', event.properties.region)",
            "least(1, 2, 3) + greatest(event.timestamp, 0)",
            "-(1 + 2) / 3",
            "12.50",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "1 +",
            "round(",
            "round(1, 2, 3)",
            "ceil()",
            "unknown(1)",
            "event.properties",
            "event.other",
            "1..2",
            "'open",
            "(1",
            "1)",
            "event.properties.a\t+ 1",
            "rOuNd(1)",
        ] {
            assert!(!is_valid(bad), "{bad:?}");
        }
    }
}
