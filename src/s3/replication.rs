//! Buckets named inside configuration writes (replication, inventory,
//! logging, analytics).
//!
//! The gate forwards the exact bytes it read, so it must read them as the
//! upstream will: anything an XML parser could resolve in more than one way
//! (a DOCTYPE, entities, processing instructions, foreign or prefixed
//! namespaces, an element given twice) is refused rather than interpreted.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::request::valid_bucket_name;
use super::{ConfigBody, Destination, S3Error};

/// Configuration bodies are small; the gate holds one in memory to read it.
pub const MAX_CONFIG_BODY: usize = 1 << 20;

const S3_NAMESPACE: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Partitions whose bucket ARNs name a plain bucket.
const BUCKET_ARN_PREFIXES: [&str; 3] =
    ["arn:aws:s3:::", "arn:aws-cn:s3:::", "arn:aws-us-gov:s3:::"];

/// Where one kind of configuration keeps its destinations. Paths are
/// element names; `group` is below the root, `bucket` and `prefixes` below
/// the group.
struct Layout {
    root: &'static str,
    /// The element holding one destination and the filter that chooses
    /// what goes there (empty: the root itself).
    group: &'static [&'static str],
    bucket: &'static [&'static str],
    prefixes: &'static [&'static [&'static str]],
    /// The bucket is an ARN rather than a plain name.
    arn: bool,
    /// A group without a bucket is malformed, rather than one that exports
    /// nowhere (analytics without a data export).
    bucket_required: bool,
}

const FILTER_PREFIX: &[&str] = &["Filter", "Prefix"];
const FILTER_AND_PREFIX: &[&str] = &["Filter", "And", "Prefix"];

fn layout(kind: ConfigBody) -> &'static Layout {
    match kind {
        ConfigBody::Replication => &Layout {
            root: "ReplicationConfiguration",
            group: &["Rule"],
            bucket: &["Destination", "Bucket"],
            // `<Rule><Prefix>` is the V1 schema, still accepted by S3.
            prefixes: &[FILTER_PREFIX, FILTER_AND_PREFIX, &["Prefix"]],
            arn: true,
            bucket_required: true,
        },
        ConfigBody::Inventory => &Layout {
            root: "InventoryConfiguration",
            group: &[],
            bucket: &["Destination", "S3BucketDestination", "Bucket"],
            prefixes: &[FILTER_PREFIX],
            arn: true,
            bucket_required: true,
        },
        // Server access logs describe requests on every key: no prefix.
        ConfigBody::Logging => &Layout {
            root: "BucketLoggingStatus",
            group: &["LoggingEnabled"],
            bucket: &["TargetBucket"],
            prefixes: &[],
            arn: false,
            bucket_required: true,
        },
        ConfigBody::Analytics => &Layout {
            root: "AnalyticsConfiguration",
            group: &[],
            bucket: &[
                "StorageClassAnalysis",
                "DataExport",
                "Destination",
                "S3BucketDestination",
                "Bucket",
            ],
            prefixes: &[FILTER_PREFIX, FILTER_AND_PREFIX],
            arn: true,
            bucket_required: false,
        },
    }
}

/// Every bucket a configuration body names, with the prefix of the objects
/// that go there.
pub fn destinations(kind: ConfigBody, body: &[u8]) -> Result<Vec<Destination>, S3Error> {
    if body.len() > MAX_CONFIG_BODY {
        return Err(S3Error::malformed_xml(
            "configuration body larger than 1 MiB",
        ));
    }
    let mut reader = Reader::from_reader(body);
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = true;

    let mut doc = Document::new(layout(kind));
    let mut first = true;
    loop {
        match reader.read_event().map_err(unparsable)? {
            Event::Decl(decl) if first => {
                let encoding = decl.encoding().transpose().map_err(unparsable)?;
                if encoding.is_some_and(|e| !e.eq_ignore_ascii_case(b"utf-8")) {
                    return Err(S3Error::malformed_xml(
                        "encodings other than UTF-8 are refused",
                    ));
                }
            }
            Event::Decl(_) | Event::PI(_) => {
                return Err(S3Error::malformed_xml(
                    "processing instructions are refused",
                ))
            }
            Event::DocType(_) => {
                return Err(S3Error::malformed_xml(
                    "DOCTYPE and entity declarations are refused",
                ))
            }
            Event::Comment(_) => {}
            Event::Start(element) => doc.start(&element)?,
            Event::Text(text) => doc.text(&text.unescape().map_err(unparsable)?)?,
            Event::CData(cdata) => doc.text(&cdata.decode().map_err(unparsable)?)?,
            Event::End(_) => doc.end()?,
            Event::Empty(_) => unreachable!("expand_empty_elements is set"),
            Event::Eof => return doc.finish(),
        }
        first = false;
    }
}

fn unparsable(e: impl std::fmt::Display) -> S3Error {
    S3Error::malformed_xml(format!("unparsable XML: {e}"))
}

/// The reading of one configuration document, element by element.
struct Document {
    layout: &'static Layout,
    /// Open elements, root first.
    stack: Vec<String>,
    /// The default namespace the root chose; every other element must stay
    /// in it.
    namespace: Option<String>,
    root_seen: bool,
    group: Group,
    /// The leaf being read, and its text so far.
    capture: Option<(Leaf, String)>,
    out: Vec<Destination>,
}

impl Document {
    fn new(layout: &'static Layout) -> Self {
        Document {
            layout,
            stack: Vec::new(),
            namespace: None,
            root_seen: false,
            group: Group::default(),
            capture: None,
            out: Vec::new(),
        }
    }

    fn start(&mut self, element: &BytesStart) -> Result<(), S3Error> {
        if let Some((leaf, _)) = &self.capture {
            let leaf = leaf.name(self.layout);
            return Err(S3Error::malformed_xml(format!("element inside <{leaf}>")));
        }
        let name = element_name(element, &mut self.namespace)?;
        if self.stack.is_empty() {
            if self.root_seen || name != self.layout.root {
                let root = self.layout.root;
                return Err(S3Error::malformed_xml(format!(
                    "the one root element must be <{root}>"
                )));
            }
            self.root_seen = true;
        }
        self.stack.push(name);
        match relative(&self.stack, self.layout.group) {
            Some([]) => self.group = Group::default(),
            Some(rel) => {
                if let Some(leaf) = Leaf::at(rel, self.layout) {
                    if self.group.slot(leaf).is_some() {
                        let leaf = leaf.name(self.layout);
                        return Err(S3Error::malformed_xml(format!("<{leaf}> given twice")));
                    }
                    self.capture = Some((leaf, String::new()));
                }
            }
            None => {}
        }
        Ok(())
    }

    fn text(&mut self, text: &str) -> Result<(), S3Error> {
        match &mut self.capture {
            Some((_, value)) => value.push_str(text),
            None if self.stack.is_empty() && !text.trim().is_empty() => {
                return Err(S3Error::malformed_xml("text outside the root element"))
            }
            None => {}
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), S3Error> {
        if let Some((leaf, value)) = self.capture.take() {
            *self.group.slot(leaf) = Some(value);
        } else if let Some([]) = relative(&self.stack, self.layout.group) {
            let group = std::mem::take(&mut self.group);
            self.out.extend(group.close(self.layout)?);
        }
        self.stack.pop();
        Ok(())
    }

    fn finish(self) -> Result<Vec<Destination>, S3Error> {
        if let Some(open) = self.stack.last() {
            return Err(S3Error::malformed_xml(format!("<{open}> is never closed")));
        }
        if !self.root_seen {
            let root = self.layout.root;
            return Err(S3Error::malformed_xml(format!("no <{root}> element")));
        }
        Ok(self.out)
    }
}

/// An element's name, refusing prefixes and namespaces other than the
/// root's (S3's or none): another parser might not see the element at all.
fn element_name(element: &BytesStart, namespace: &mut Option<String>) -> Result<String, S3Error> {
    let name = std::str::from_utf8(element.name().as_ref())
        .map_err(unparsable)?
        .to_owned();
    if name.contains(':') {
        return Err(S3Error::malformed_xml(format!(
            "namespace prefixes are refused: <{name}>"
        )));
    }
    let mut declared = None;
    for attribute in element.attributes() {
        let attribute = attribute.map_err(unparsable)?;
        if attribute.key.as_ref() == b"xmlns" {
            declared = Some(attribute.unescape_value().map_err(unparsable)?.into_owned());
        }
    }
    match (namespace.as_deref(), declared) {
        (None, declared) => {
            let declared = declared.unwrap_or_default();
            if !declared.is_empty() && declared != S3_NAMESPACE {
                return Err(S3Error::malformed_xml(format!(
                    "namespace {declared:?} is not S3's"
                )));
            }
            *namespace = Some(declared);
        }
        (Some(root), Some(declared)) if declared != root => {
            return Err(S3Error::malformed_xml(format!(
                "<{name}> changes the namespace to {declared:?}"
            )));
        }
        _ => {}
    }
    Ok(name)
}

/// The path below `group` if the stack (root first) is inside it.
fn relative<'s>(stack: &'s [String], group: &[&str]) -> Option<&'s [String]> {
    let below_root = stack.get(1..)?;
    let inside =
        below_root.len() >= group.len() && below_root.iter().zip(group).all(|(a, b)| a == b);
    inside.then(|| &below_root[group.len()..])
}

fn is_path(rel: &[String], path: &[&str]) -> bool {
    rel.len() == path.len() && rel.iter().zip(path).all(|(a, b)| a == b)
}

/// The text elements the gate reads inside a group.
#[derive(Clone, Copy)]
enum Leaf {
    Bucket,
    Prefix,
}

impl Leaf {
    fn at(rel: &[String], layout: &Layout) -> Option<Leaf> {
        if is_path(rel, layout.bucket) {
            Some(Leaf::Bucket)
        } else if layout.prefixes.iter().any(|p| is_path(rel, p)) {
            Some(Leaf::Prefix)
        } else {
            None
        }
    }

    fn name(self, layout: &Layout) -> &'static str {
        match self {
            Leaf::Bucket => layout.bucket.last().copied().unwrap_or_default(),
            Leaf::Prefix => "Prefix",
        }
    }
}

/// One rule (or the whole configuration) being read.
#[derive(Default)]
struct Group {
    bucket: Option<String>,
    prefix: Option<String>,
}

impl Group {
    fn slot(&mut self, leaf: Leaf) -> &mut Option<String> {
        match leaf {
            Leaf::Bucket => &mut self.bucket,
            Leaf::Prefix => &mut self.prefix,
        }
    }

    fn close(self, layout: &Layout) -> Result<Option<Destination>, S3Error> {
        let Some(value) = self.bucket else {
            if layout.bucket_required {
                let leaf = Leaf::Bucket.name(layout);
                return Err(S3Error::malformed_xml(format!(
                    "a destination without <{leaf}>"
                )));
            }
            return Ok(None);
        };
        let bucket = if layout.arn {
            BUCKET_ARN_PREFIXES
                .iter()
                .find_map(|p| value.strip_prefix(p))
        } else {
            Some(value.as_str())
        };
        match bucket {
            Some(bucket) if valid_bucket_name(bucket) => Ok(Some(Destination {
                bucket: bucket.to_owned(),
                prefix: self.prefix.unwrap_or_default(),
            })),
            _ if layout.arn => Err(S3Error::invalid_argument(format!(
                "destination {value:?} is not arn:aws:s3:::<bucket>"
            ))),
            _ => Err(S3Error::invalid_argument(format!(
                "target bucket {value:?} is not a bucket name"
            ))),
        }
    }
}
