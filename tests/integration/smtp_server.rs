//! The SMTP server the tests talk to is test_support's, which the
//! benchmark uses too; reading a received message's MIME structure is for
//! the tests only.

pub use test_support::smtp::{Received, SmtpServer, Stage};

pub trait ReceivedExt {
    fn parsed(&self) -> mailparse::ParsedMail<'_>;

    /// A header of the top-level message (decoded), if present.
    fn header(&self, name: &str) -> Option<String> {
        use mailparse::MailHeaderMap;
        self.parsed().headers.get_first_value(name)
    }

    /// The decoded body of the first part with this MIME type.
    fn part(&self, mime: &str) -> Option<String> {
        fn find(part: &mailparse::ParsedMail<'_>, mime: &str) -> Option<String> {
            if part.ctype.mimetype.eq_ignore_ascii_case(mime) && part.subparts.is_empty() {
                return Some(part.get_body().expect("a decodable body"));
            }
            part.subparts.iter().find_map(|p| find(p, mime))
        }
        find(&self.parsed(), mime)
    }

    fn text(&self) -> String {
        self.part("text/plain").expect("a text/plain part")
    }

    fn html(&self) -> String {
        self.part("text/html").expect("a text/html part")
    }
}

impl ReceivedExt for Received {
    fn parsed(&self) -> mailparse::ParsedMail<'_> {
        mailparse::parse_mail(&self.data).expect("a well-formed message")
    }
}
