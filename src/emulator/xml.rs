//! A small XML element tree for CloudFront's REST-XML bodies.
//!
//! Distribution configs are stored as trees so that every setting a client sends comes back
//! unchanged, including ones the emulator does not interpret.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

/// CloudFront's XML namespace for API version 2020-05-31.
pub const NAMESPACE: &str = "http://cloudfront.amazonaws.com/doc/2020-05-31/";

/// An element with child elements or text (CloudFront never mixes the two).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

/// The deepest nesting a document may have. CloudFront's own documents nest about ten deep;
/// the limit keeps a hostile body from building a tree whose (recursive) drop, comparison or
/// serialization would overflow the stack.
pub const MAX_DEPTH: usize = 64;

/// Why a body is not acceptable XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed XML: {0}")]
pub struct XmlError(pub String);

impl Element {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// A leaf element holding text.
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
            children: Vec::new(),
        }
    }

    /// Builder: appends a child.
    pub fn with(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    /// Builder: appends a text child.
    pub fn with_text(self, name: &str, text: impl Into<String>) -> Self {
        self.with(Element::text(name, text))
    }

    /// Builder: appends a text child when there is a value.
    pub fn with_optional_text(self, name: &str, text: Option<&str>) -> Self {
        match text {
            Some(t) => self.with_text(name, t),
            None => self,
        }
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of a child element, if present.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Follows a path of child names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |e, n| e.child(n))
    }

    /// Replaces the child with this name, or appends it.
    pub fn set_child(&mut self, child: Element) {
        match self.children.iter_mut().find(|c| c.name == child.name) {
            Some(slot) => *slot = child,
            None => self.children.push(child),
        }
    }

    /// Parses a document and returns its root element (namespace attributes are dropped).
    pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
        // Text is kept exactly (a leaf's value is what the client sent, spaces included);
        // whitespace between child elements is layout, dropped at the element's end. (Trimming
        // each text event instead read `&#32;a` as " a" and, written back, as "a".)
        let mut reader = Reader::from_reader(body);
        let mut stack: Vec<Element> = Vec::new();
        let mut buf = Vec::new();
        loop {
            let event = reader
                .read_event_into(&mut buf)
                .map_err(|e| XmlError(e.to_string()))?;
            match event {
                Event::Start(start) => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(XmlError(format!("elements nested deeper than {MAX_DEPTH}")));
                    }
                    stack.push(Element::new(local_name(&start)?));
                }
                Event::Empty(start) => {
                    let element = Element::new(local_name(&start)?);
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return Ok(element),
                    }
                }
                Event::Text(text) => {
                    if let Some(top) = stack.last_mut() {
                        let decoded = text.decode().map_err(|e| XmlError(e.to_string()))?;
                        let unescaped = quick_xml::escape::unescape(&decoded)
                            .map_err(|e| XmlError(e.to_string()))?;
                        top.text.push_str(&unescaped);
                    }
                }
                Event::GeneralRef(reference) => {
                    if let Some(top) = stack.last_mut() {
                        let name = reference.decode().map_err(|e| XmlError(e.to_string()))?;
                        let entity = format!("&{name};");
                        let resolved = quick_xml::escape::unescape(&entity)
                            .map_err(|e| XmlError(e.to_string()))?;
                        top.text.push_str(&resolved);
                    }
                }
                Event::CData(data) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Event::End(_) => {
                    let mut done = stack
                        .pop()
                        .ok_or_else(|| XmlError("unbalanced end tag".into()))?;
                    if !done.children.is_empty() {
                        if !done.text.trim().is_empty() {
                            return Err(XmlError(format!(
                                "<{}> mixes text and elements",
                                done.name
                            )));
                        }
                        done.text.clear();
                    }
                    // XML 1.0 has no control characters but tab, newline and return, however
                    // the text was written (plain, CDATA or a character reference).
                    if done
                        .text
                        .chars()
                        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
                    {
                        return Err(XmlError(format!("control character in <{}>", done.name)));
                    }
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Event::Eof => return Err(XmlError("unexpected end of document".into())),
                _ => {}
            }
            buf.clear();
        }
    }

    /// Serializes as a document whose root carries CloudFront's namespace.
    pub fn to_document(&self) -> Vec<u8> {
        self.to_document_in(NAMESPACE)
    }

    /// Serializes as a document whose root carries `namespace` (STS has its own).
    pub fn to_document_in(&self, namespace: &str) -> Vec<u8> {
        let mut writer = Writer::new(Vec::new());
        // Writing into a Vec cannot fail.
        let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
        self.write(&mut writer, Some(namespace));
        writer.into_inner()
    }

    fn write(&self, writer: &mut Writer<Vec<u8>>, namespace: Option<&str>) {
        let mut start = BytesStart::new(self.name.as_str());
        if let Some(namespace) = namespace {
            start.push_attribute(("xmlns", namespace));
        }
        if self.children.is_empty() && self.text.is_empty() {
            let _ = writer.write_event(Event::Empty(start));
            return;
        }
        let _ = writer.write_event(Event::Start(start));
        if !self.text.is_empty() {
            let _ = writer.write_event(Event::Text(BytesText::new(&self.text)));
        }
        for child in &self.children {
            child.write(writer, None);
        }
        let _ = writer.write_event(Event::End(BytesEnd::new(self.name.as_str())));
    }
}

/// The element's name without its prefix, refused unless it is an XML name (a fuzzed body
/// such as `<-8"?>` otherwise became an element no document can hold).
fn local_name(start: &BytesStart<'_>) -> Result<String, XmlError> {
    let name = start.local_name();
    let name = std::str::from_utf8(name.as_ref()).map_err(|e| XmlError(e.to_string()))?;
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_alphabetic() || c == '_');
    if !starts_well || !chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        return Err(XmlError(format!("{name:?} is not an element name")));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    /// Found by the `emulator_xml` fuzz target: a name that is not an XML name parsed, and
    /// the tree written back was no longer a document.
    #[test]
    fn element_names_must_be_xml_names() {
        let found = b"<-8\"?>\n<KeyGroupConfig xmlns=\"y/></DistributionConfig>";
        assert!(Element::parse(found).is_err());
        assert!(Element::parse(b"<1a/>").is_err());
        assert!(Element::parse(b"<a.b-c_d/>").is_ok());
    }

    /// Found by the `emulator_xml` fuzz target: NUL in text parsed, and did not come back the
    /// same through a written document.
    #[test]
    fn control_characters_in_text_are_refused() {
        let found = b"<Comment>I' .amp;\x00\x00>\x00 b</Comment>";
        assert!(Element::parse(found).is_err());
        assert!(Element::parse(b"<Comment><![CDATA[a\x00b]]></Comment>").is_err());
        assert!(Element::parse(b"<Comment>tab\tnewline\n</Comment>").is_ok());
    }

    use super::*;

    #[test]
    fn a_deeply_nested_body_is_refused_not_a_crash() {
        // About 700 KB of nesting, under the 2 MB body limit: once enough to overflow the
        // stack when the tree was dropped.
        let depth = 100_000;
        let body = format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth));
        let error = Element::parse(body.as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("nested deeper than 64"),
            "{error}"
        );
        let at_limit = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(Element::parse(at_limit.as_bytes()).is_ok());
    }

    #[test]
    fn round_trips_nested_elements_and_escaped_text() {
        let doc = Element::new("KeyGroupConfig")
            .with_text("Name", "a&b<c>")
            .with(
                Element::new("Items")
                    .with_text("PublicKey", "K1")
                    .with_text("PublicKey", "K2"),
            )
            .with(Element::new("Empty"));
        let parsed = Element::parse(&doc.to_document()).expect("parse");
        assert_eq!(parsed, doc);
        assert_eq!(parsed.child_text("Name"), Some("a&b<c>"));
        assert_eq!(
            parsed
                .path(&["Items"])
                .map(|i| i.children_named("PublicKey").count()),
            Some(2)
        );
    }

    /// Found by the `emulator_xml` fuzz target: whitespace written as a character reference
    /// was kept on the first parse and trimmed after a write and a second parse.
    #[test]
    fn leaf_text_is_kept_exactly_and_layout_between_elements_is_not_text() {
        let parsed = Element::parse(b"<Comment>&#32;a &amp; b </Comment>").unwrap();
        assert_eq!(parsed.text, " a & b ");
        assert_eq!(Element::parse(&parsed.to_document()).unwrap(), parsed);
        let indented = Element::parse(b"<A>\n  <B>x</B>\n  <C/>\n</A>").unwrap();
        assert_eq!(
            indented,
            Element::new("A")
                .with_text("B", "x")
                .with(Element::new("C"))
        );
        let mixed = Element::parse(b"<A>text<B>x</B></A>").unwrap_err();
        assert!(
            mixed.to_string().contains("<A> mixes text and elements"),
            "{mixed}"
        );
    }

    #[test]
    fn rejects_truncated_documents() {
        assert!(Element::parse(b"<A><B>x</B>").is_err());
    }
}
