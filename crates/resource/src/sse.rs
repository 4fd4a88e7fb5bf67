//! A Server-Sent Events parser (WHATWG HTML Living Standard, §9.2.6 "Interpreting an event
//! stream"), fed with arbitrary chunks of bytes as they arrive.
//!
//! * Lines end with CRLF, LF or CR — a CR at the end of one chunk and an LF at the start of the
//!   next are one line ending.
//! * A UTF-8 BOM at the very start of the stream is skipped.
//! * `field: value` (one leading space of the value removed), `field` alone (empty value); a line
//!   starting with `:` is a comment.
//! * `event` sets the type, `data` appends to the data buffer (joined with LF: multi-line data),
//!   `id` sets the event id (ignored if it contains NUL), `retry` sets the reconnection time when
//!   it is all ASCII digits; other fields are ignored.
//! * An empty line dispatches the event; with an empty data buffer nothing is dispatched (the
//!   standard's rule), and the type and data are reset either way.
//! * Unlike an `EventSource`, whose last-event-ID buffer persists from event to event, each
//!   [`SseEvent`] carries only the `id` given in its own block: the subscriber advances its cursor
//!   on events it has processed, which is the same position.
//!
//! Lines longer than [`MAX_LINE_BYTES`], and an event whose data lines add up to more than
//! [`MAX_EVENT_DATA_BYTES`] (`data:` lines without the blank line that would dispatch them), are
//! errors: the subscriber drops the connection (and the event) rather than buffer without bound,
//! and reconnects from its cursor. After an error the parser's state is unspecified: start a new
//! one with the new connection.

use std::time::Duration;

/// The longest line accepted. Feed events are a few hundred bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The most data one event may carry: its `data` lines joined with LF, after UTF-8 decoding.
pub const MAX_EVENT_DATA_BYTES: usize = 64 * 1024;

/// Something the stream said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SseItem {
    /// A dispatched event.
    Event(SseEvent),
    /// A comment line (`: keepalive`): the connection is alive.
    Comment,
    /// A `retry:` field: the server's suggested reconnection delay.
    Retry(Duration),
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field, `message` when none was given.
    pub event: String,
    /// The `id` field of this event, if it had one.
    pub id: Option<String>,
    /// The `data` lines joined with LF.
    pub data: String,
}

/// The stream broke the parser's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line longer than [`MAX_LINE_BYTES`].
    #[error("event stream line longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong,
    /// One event's data longer than [`MAX_EVENT_DATA_BYTES`].
    #[error("event data longer than {MAX_EVENT_DATA_BYTES} bytes")]
    DataTooLong,
}

/// Incremental parser state for one connection.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended with CR: an LF at the start of this one belongs to it.
    after_cr: bool,
    /// Past the first bytes of the stream (where a BOM may be).
    started: bool,
    event: Option<String>,
    id: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk; returns what it completed, in order.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<SseItem>, SseError> {
        let mut items = Vec::new();
        if !self.started && !chunk.is_empty() {
            // A BOM may be split across chunks only pathologically; the feed sends none. Check
            // the first chunk (and a partial line carried over) for it.
            self.line.extend_from_slice(chunk);
            if self.line.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.line) {
                return Ok(items);
            }
            self.started = true;
            let buffered = std::mem::take(&mut self.line);
            let rest = buffered.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buffered);
            self.scan(rest, &mut items)?;
            return Ok(items);
        }
        if self.after_cr {
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
            self.after_cr = false;
        }
        self.scan(chunk, &mut items)?;
        Ok(items)
    }

    fn scan(&mut self, mut chunk: &[u8], items: &mut Vec<SseItem>) -> Result<(), SseError> {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = chunk.split_at(pos);
            let (ending, after) = tail.split_at(1);
            let mut rest = after;
            if ending == b"\r" {
                match rest.first() {
                    Some(b'\n') => rest = rest.get(1..).unwrap_or_default(),
                    Some(_) => {}
                    // The LF of a CRLF may start the next chunk.
                    None => self.after_cr = true,
                }
            }
            if self.line.len() + head.len() > MAX_LINE_BYTES {
                return Err(SseError::LineTooLong);
            }
            self.line.extend_from_slice(head);
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, items)?;
            chunk = rest;
        }
        if self.line.len() + chunk.len() > MAX_LINE_BYTES {
            return Err(SseError::LineTooLong);
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn process_line(&mut self, line: &[u8], items: &mut Vec<SseItem>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(items);
            return Ok(());
        }
        if line.first() == Some(&b':') {
            items.push(SseItem::Comment);
            return Ok(());
        }
        // Splitting on ASCII bytes never cuts a UTF-8 sequence; invalid bytes become U+FFFD as
        // the standard's UTF-8 decode does.
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                let added = value.len().saturating_add(usize::from(self.has_data));
                if self.data.len().saturating_add(added) > MAX_EVENT_DATA_BYTES {
                    // Drop the event: the caller drops the connection.
                    self.dispatch(&mut Vec::new());
                    return Err(SseError::DataTooLong);
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            // "If the field value does not contain U+0000 NULL, then set the last event ID
            // buffer to the field value. Otherwise, ignore the field."
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            // "If the field value consists of only ASCII digits, then interpret the field value
            // as an integer in base ten … Otherwise, ignore the field."
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse::<u64>() {
                    items.push(SseItem::Retry(Duration::from_millis(ms)));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, items: &mut Vec<SseItem>) {
        let event = self.event.take();
        let id = self.id.take();
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::replace(&mut self.has_data, false);
        if !has_data {
            return;
        }
        items.push(SseItem::Event(SseEvent {
            event: event
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "message".to_owned()),
            id,
            data,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(items: Vec<SseItem>) -> Vec<SseEvent> {
        items
            .into_iter()
            .filter_map(|i| match i {
                SseItem::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn parse_all(input: &[u8]) -> Vec<SseItem> {
        SseParser::new().push(input).unwrap()
    }

    #[test]
    fn parses_the_feed_frames_of_the_wire_format_document() {
        let input =
            b"retry: 1000\nevent: ready\nid: 41\ndata: {\"cursor\":41,\"heartbeat\":10}\n\n\
event: revoked\nid: 42\ndata: {\"seq\":42}\n\n: keepalive\n\n";
        let items = parse_all(input);
        assert_eq!(
            items,
            vec![
                SseItem::Retry(Duration::from_millis(1000)),
                SseItem::Event(SseEvent {
                    event: "ready".into(),
                    id: Some("41".into()),
                    data: "{\"cursor\":41,\"heartbeat\":10}".into(),
                }),
                SseItem::Event(SseEvent {
                    event: "revoked".into(),
                    id: Some("42".into()),
                    data: "{\"seq\":42}".into(),
                }),
                SseItem::Comment,
            ]
        );
    }

    #[test]
    fn multi_line_data_is_joined_with_lf() {
        let items = parse_all(b"data: a\ndata:b\ndata\ndata:  c\n\n");
        assert_eq!(events(items)[0].data, "a\nb\n\n c");
    }

    #[test]
    fn crlf_cr_and_lf_all_end_lines_even_split_across_chunks() {
        let input: &[u8] = b"event: x\r\ndata: 1\rid: 7\n\r\nevent: y\rdata: 2\r\r";
        let whole = events(parse_all(input));
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].event, "x");
        assert_eq!(whole[0].id.as_deref(), Some("7"));
        assert_eq!(whole[1].event, "y");
        assert_eq!(whole[1].data, "2");
        // Every split point, including between the CR and LF of a CRLF.
        for split in 0..=input.len() {
            let mut parser = SseParser::new();
            let (a, b) = input.split_at(split);
            let mut items = parser.push(a).unwrap();
            items.extend(parser.push(b).unwrap());
            assert_eq!(events(items), whole, "split at {split}");
        }
        // One byte at a time.
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for byte in input {
            items.extend(parser.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(events(items), whole);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_resets_the_type() {
        let items = events(parse_all(b"event: ready\nid: 3\n\ndata: x\n\n"));
        assert_eq!(
            items,
            vec![SseEvent {
                event: "message".into(),
                id: None,
                data: "x".into()
            }]
        );
    }

    #[test]
    fn comments_unknown_fields_bad_retry_and_nul_ids_are_ignored() {
        let items = parse_all(b":hi\nfoo: bar\nretry: 1x\nretry\nid: a\0b\ndata: d\n\n");
        assert_eq!(
            items,
            vec![
                SseItem::Comment,
                SseItem::Event(SseEvent {
                    event: "message".into(),
                    id: None,
                    data: "d".into()
                })
            ]
        );
    }

    #[test]
    fn a_leading_bom_is_skipped_and_only_one_space_is_removed() {
        let items = events(parse_all(b"\xEF\xBB\xBFevent:  two\ndata:x\n\n"));
        assert_eq!(items[0].event, " two");
        let mut parser = SseParser::new();
        assert!(parser.push(b"\xEF").unwrap().is_empty());
        assert!(parser.push(b"\xBB").unwrap().is_empty());
        let items = events(parser.push(b"\xBFdata: y\n\n").unwrap());
        assert_eq!(items[0].data, "y");
    }

    #[test]
    fn an_unterminated_event_is_not_dispatched() {
        let mut parser = SseParser::new();
        assert!(events(parser.push(b"data: x\n").unwrap()).is_empty());
        assert_eq!(events(parser.push(b"\n").unwrap()).len(), 1);
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut parser = SseParser::new();
        let big = vec![b'a'; MAX_LINE_BYTES];
        assert!(parser.push(b"data: ").is_ok());
        assert_eq!(parser.push(&big), Err(SseError::LineTooLong));
    }

    #[test]
    fn one_event_carries_at_most_64_kib_of_data() {
        // Exactly the limit, over 64 lines and the 63 LFs joining them: dispatched.
        let line = format!("data: {}\n", "x".repeat(1023));
        let last = format!("data: {}\n", "x".repeat(1024));
        let mut parser = SseParser::new();
        for _ in 0..63 {
            assert!(events(parser.push(line.as_bytes()).unwrap()).is_empty());
        }
        assert!(events(parser.push(last.as_bytes()).unwrap()).is_empty());
        let items = events(parser.push(b"\n").unwrap());
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].data.len(), MAX_EVENT_DATA_BYTES);
        // One byte more is not.
        let mut parser = SseParser::new();
        for _ in 0..63 {
            assert!(events(parser.push(line.as_bytes()).unwrap()).is_empty());
        }
        let over = format!("data: {}\n", "x".repeat(1025));
        assert_eq!(parser.push(over.as_bytes()), Err(SseError::DataTooLong));

        // An endless sequence of `data:` lines without a blank line is cut at the limit, each
        // line well under the line limit.
        let mut parser = SseParser::new();
        let line = format!("data: {}\n", "z".repeat(1000));
        let mut fed = 0usize;
        let error = loop {
            match parser.push(line.as_bytes()) {
                Ok(items) => assert!(items.is_empty()),
                Err(error) => break error,
            }
            fed += 1000;
            assert!(fed <= MAX_EVENT_DATA_BYTES + 1000, "not cut");
        };
        assert_eq!(error, SseError::DataTooLong);
        assert!(fed > MAX_EVENT_DATA_BYTES - 2000, "cut too early at {fed}");
        assert!(parser.data.is_empty(), "the event is dropped");
        // Also when the lines arrive in one chunk.
        let mut parser = SseParser::new();
        let many = line.repeat(70);
        assert_eq!(parser.push(many.as_bytes()), Err(SseError::DataTooLong));
    }
}
