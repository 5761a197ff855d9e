//! Email templates, kept as files beside this module and compiled in.

use minijinja::{Environment, Value};

pub struct Templates {
    env: Environment<'static>,
}

pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    pub fn new() -> Templates {
        let mut env = Environment::new();
        // HTML templates are auto-escaped (by their .html name); text ones not.
        for (name, source) in [
            (
                "token_revoked.subject.txt",
                include_str!("templates/token_revoked.subject.txt"),
            ),
            (
                "token_revoked.txt",
                include_str!("templates/token_revoked.txt"),
            ),
            (
                "token_revoked.html",
                include_str!("templates/token_revoked.html"),
            ),
            (
                "sign_in.subject.txt",
                include_str!("templates/sign_in.subject.txt"),
            ),
            ("sign_in.txt", include_str!("templates/sign_in.txt")),
            ("sign_in.html", include_str!("templates/sign_in.html")),
        ] {
            env.add_template(name, source)
                .expect("email templates parse");
        }
        Templates { env }
    }

    pub fn render(&self, name: &str, context: &Value) -> Result<Rendered, minijinja::Error> {
        let render = |suffix: &str| {
            self.env
                .get_template(&format!("{name}.{suffix}"))
                .and_then(|t| t.render(context))
        };
        Ok(Rendered {
            // A subject is one line, whatever the data contains.
            subject: render("subject.txt")?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
            text: render("txt")?,
            html: render("html")?,
        })
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}
