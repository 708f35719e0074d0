//! Lago's list pagination: `page` / `per_page` query parameters and the `meta` object of every list response.

use serde::{Deserialize, Serialize};

/// Lists return this many items when `per_page` is not given (Lago's `PER_PAGE`).
pub const DEFAULT_PER_PAGE: u32 = 100;
/// What an unusable `per_page` (negative, zero, not a number) means: Kaminari's default, as in Lago.
pub const FALLBACK_PER_PAGE: u32 = 25;
/// Lago has no upper bound; one page never holds more than this, so a single request cannot load a whole table.
pub const MAX_PER_PAGE: u32 = 10_000;

/// `?page=&per_page=` as sent, read the way Lago (Ruby's `to_i`, Kaminari) reads them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageQuery {
    pub page: Option<String>,
    pub per_page: Option<String>,
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub page: u32,
    pub per_page: u32,
}

impl PageQuery {
    pub fn page(&self) -> Page {
        // page: leading digits, anything below 1 is page 1.
        let page = self.page.as_deref().and_then(leading_integer).filter(|n| *n >= 1).unwrap_or(1);
        let per_page = match self.per_page.as_deref() {
            None => u64::from(DEFAULT_PER_PAGE),
            Some(s) => leading_integer(s).filter(|n| *n >= 1).unwrap_or(u64::from(FALLBACK_PER_PAGE)),
        };
        Page { page: page.min(u64::from(u32::MAX)) as u32, per_page: per_page.min(u64::from(MAX_PER_PAGE)) as u32 }
    }
}

/// Ruby's `to_i` for non-negative numbers: the leading digits (`"2x"` is 2); `None` when there are none.
fn leading_integer(s: &str) -> Option<u64> {
    let digits: String = s.trim_start().chars().take_while(char::is_ascii_digit).take(18).collect();
    digits.parse().ok()
}

impl Page {
    pub fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    pub fn offset(&self) -> i64 {
        i64::from(self.page - 1) * i64::from(self.per_page)
    }

    /// The `meta` object for a list whose whole (unpaged) count is `total_count`; an empty list is on page 0, as in
    /// Lago.
    pub fn meta(&self, total_count: i64) -> PaginationMeta {
        let total_count = total_count.max(0) as u64;
        if total_count == 0 {
            return PaginationMeta { current_page: 0, next_page: None, prev_page: None, total_pages: 0, total_count };
        }
        let total_pages = total_count.div_ceil(u64::from(self.per_page));
        let current = u64::from(self.page);
        PaginationMeta {
            current_page: current,
            next_page: (current < total_pages).then_some(current + 1),
            prev_page: (current > 1).then_some(current - 1),
            total_pages,
            total_count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaginationMeta {
    pub current_page: u64,
    pub next_page: Option<u64>,
    pub prev_page: Option<u64>,
    pub total_pages: u64,
    pub total_count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(page: Option<&str>, per_page: Option<&str>) -> Page {
        PageQuery { page: page.map(Into::into), per_page: per_page.map(Into::into) }.page()
    }

    #[test]
    fn defaults_and_bad_values_fall_back() {
        assert_eq!(q(None, None), Page { page: 1, per_page: DEFAULT_PER_PAGE });
        assert_eq!(q(Some("0"), Some("-3")), Page { page: 1, per_page: FALLBACK_PER_PAGE });
        assert_eq!(q(Some("abc"), Some("x")), Page { page: 1, per_page: FALLBACK_PER_PAGE });
        assert_eq!(q(Some("2x"), Some("10abc")), Page { page: 2, per_page: 10 });
        assert_eq!(q(Some("3"), Some("50000")), Page { page: 3, per_page: MAX_PER_PAGE });
    }

    #[test]
    fn meta_links_neighbours() {
        let p = q(Some("2"), Some("10"));
        assert_eq!(p.offset(), 10);
        let m = p.meta(25);
        assert_eq!(
            (m.current_page, m.next_page, m.prev_page, m.total_pages, m.total_count),
            (2, Some(3), Some(1), 3, 25)
        );
        let last = q(Some("3"), Some("10")).meta(25);
        assert_eq!(last.next_page, None);
        let empty = q(None, None).meta(0);
        assert_eq!((empty.current_page, empty.total_pages, empty.next_page, empty.prev_page), (0, 0, None, None));
        let beyond = q(Some("9"), Some("10")).meta(25);
        assert_eq!((beyond.next_page, beyond.prev_page), (None, Some(8)));
    }
}
