//! Pods read as Kubernetes protobuf: a third of JSON's bytes on the wire and far cheaper to
//! decode. The apiserver wraps a protobuf answer in an envelope (`k8s\0`, then a
//! `runtime.Unknown` holding the message); the decoder walks the wire format directly, as the
//! answer arrives, and keeps only the fields a [`PodInfo`] holds, so nothing else of a list is
//! ever allocated and the answer itself is never held whole.
//!
//! Field numbers are those of `k8s.io/api/core/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`, which Kubernetes keeps stable.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::core::v1::{Namespace, NamespaceStatus},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::core::{Status, response::StatusDetails};

use crate::snapshot::{
    ConditionInfo, ContainerInfo, LAST_APPLIED, POD_ANNOTATIONS, PodInfo, PodInterner, PodObject,
    PodSpecInfo, PodStatusInfo,
};

/// The media type the apiserver answers protobuf in.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";
/// What a protobuf answer begins with.
const MAGIC: &[u8] = b"k8s\0";

/// A protobuf answer that does not follow the wire format or the expected message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed protobuf answer: {0}")]
pub struct Malformed(&'static str);

/// One field's value on the wire.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Reads the fields of one message in order.
struct Fields<'a> {
    buf: &'a [u8],
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for i in 0..10 {
            let (&byte, rest) = self
                .buf
                .split_first()
                .ok_or(Malformed("truncated varint"))?;
            self.buf = rest;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if n > self.buf.len() {
            return Err(Malformed("field runs past the end of its message"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// The next field number and value, or `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u64, Value<'a>)>, Malformed> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| Malformed("length"))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            _ => return Err(Malformed("unsupported wire type")),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn bytes<'a>(v: Value<'a>) -> Result<&'a [u8], Malformed> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => Err(Malformed("a length-delimited field has another wire type")),
    }
}

fn string(v: Value<'_>) -> Result<String, Malformed> {
    String::from_utf8(bytes(v)?.to_vec()).map_err(|_| Malformed("a string is not UTF-8"))
}

fn varint(v: Value<'_>) -> Result<u64, Malformed> {
    match v {
        Value::Varint(n) => Ok(n),
        _ => Err(Malformed("a varint field has another wire type")),
    }
}

/// Calls `f` with every field of a message, in order.
fn each_field<'a>(
    message: &'a [u8],
    mut f: impl FnMut(u64, Value<'a>) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    let mut fields = Fields::new(message);
    while let Some((n, v)) = fields.next_field()? {
        f(n, v)?;
    }
    Ok(())
}

/// The kind and message inside the envelope.
fn open_envelope(body: &[u8]) -> Result<(String, &[u8]), Malformed> {
    let inner = body
        .strip_prefix(MAGIC)
        .ok_or(Malformed("no k8s protobuf envelope"))?;
    let (mut kind, mut raw) = (String::new(), &[][..]);
    each_field(inner, |n, v| {
        match n {
            1 => each_field(bytes(v)?, |n, v| {
                if n == 2 {
                    kind = string(v)?;
                }
                Ok(())
            })?,
            2 => raw = bytes(v)?,
            3 if !bytes(v)?.is_empty() => return Err(Malformed("encoded (compressed) content")),
            _ => {}
        }
        Ok(())
    })?;
    Ok((kind, raw))
}

/// How an answer was encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Kubernetes protobuf.
    Protobuf,
    /// JSON (a server that does not offer protobuf).
    Json,
}

/// A list, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T> {
    /// The objects.
    pub items: Vec<T>,
    /// The token of the next page, if the list was asked in pages and more follow.
    pub continue_token: Option<String>,
}

/// Where a [`ListDecoder`] is in the answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum At {
    /// Before the `k8s\0` magic.
    #[default]
    Magic,
    /// Among the envelope's (`runtime.Unknown`) fields.
    Envelope,
    /// Inside the envelope's raw message (the `PodList`), with this many of its bytes to come.
    List(usize),
}

/// Decodes a protobuf list answer (`PodList`, `NamespaceList`) as its bytes arrive: each
/// object is decoded as soon as its last byte is in and its bytes are dropped, so reading a
/// list of any size holds the decoded objects and at most one object's bytes (plus one read).
/// Equal parts of pods are shared ([`PodInterner`]).
pub struct ListDecoder<T> {
    /// The list kind expected.
    list_kind: &'static str,
    /// Decodes one item.
    item: fn(&[u8], &mut PodInterner) -> Result<T, Malformed>,
    at: At,
    /// Bytes received and not yet decoded.
    pending: Vec<u8>,
    kind: Option<String>,
    seen_list: bool,
    items: Vec<T>,
    continue_token: Option<String>,
    interner: PodInterner,
}

impl ListDecoder<PodInfo> {
    /// A decoder of a `PodList`.
    pub fn pods() -> Self {
        Self::new("PodList", |b, interner| Ok(interner.pod(pod(b)?)))
    }
}

impl ListDecoder<Namespace> {
    /// A decoder of a `NamespaceList`.
    pub fn namespaces() -> Self {
        Self::new("NamespaceList", |b, _| namespace(b))
    }
}

/// A field's header: number, wire type, header length, value length (`None`: the buffer ends
/// inside the header).
fn field_header(buf: &[u8]) -> Result<Option<(u64, u64, usize, usize)>, Malformed> {
    let mut f = Fields::new(buf);
    let Ok(key) = f.varint() else {
        return if buf.len() >= 10 {
            Err(Malformed("varint longer than 10 bytes"))
        } else {
            Ok(None)
        };
    };
    let after_key = buf.len() - f.buf.len();
    let len = match key & 7 {
        0 => match f.varint() {
            Ok(_) => {
                return Ok(Some((
                    key >> 3,
                    0,
                    after_key,
                    buf.len() - f.buf.len() - after_key,
                )));
            }
            Err(_) if f.buf.len() >= 10 => return Err(Malformed("varint longer than 10 bytes")),
            Err(_) => return Ok(None),
        },
        1 => 8,
        2 => match f.varint() {
            Ok(n) => usize::try_from(n).map_err(|_| Malformed("length"))?,
            Err(_) if f.buf.len() >= 10 => return Err(Malformed("varint longer than 10 bytes")),
            Err(_) => return Ok(None),
        },
        5 => 4,
        _ => return Err(Malformed("unsupported wire type")),
    };
    Ok(Some((key >> 3, key & 7, buf.len() - f.buf.len(), len)))
}

/// Where a field ends: its header's length plus its value's, which a malformed answer may
/// declare too long to add up (an error, never an overflow).
fn field_end(head: usize, len: usize) -> Result<usize, Malformed> {
    head.checked_add(len)
        .ok_or(Malformed("a field's length runs past any answer"))
}

impl<T> ListDecoder<T> {
    fn new(
        list_kind: &'static str,
        item: fn(&[u8], &mut PodInterner) -> Result<T, Malformed>,
    ) -> Self {
        Self {
            list_kind,
            item,
            at: At::Magic,
            pending: Vec::new(),
            kind: None,
            seen_list: false,
            items: Vec::new(),
            continue_token: None,
            interner: PodInterner::default(),
        }
    }

    /// Decodes what `chunk` completes; keeps the rest for the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), Malformed> {
        self.pending.extend_from_slice(chunk);
        let mut buf = std::mem::take(&mut self.pending);
        let used = self.decode(&buf);
        buf.drain(..used.as_ref().map_or(0, |n| *n));
        self.pending = buf;
        used.map(drop)
    }

    /// Decodes as much of `buf` as is whole; how many bytes that used.
    fn decode(&mut self, buf: &[u8]) -> Result<usize, Malformed> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            match self.at {
                At::Magic => {
                    if rest.len() < MAGIC.len() {
                        if !MAGIC.starts_with(rest) {
                            return Err(Malformed("no k8s protobuf envelope"));
                        }
                        return Ok(at);
                    }
                    if !rest.starts_with(MAGIC) {
                        return Err(Malformed("no k8s protobuf envelope"));
                    }
                    at += MAGIC.len();
                    self.at = At::Envelope;
                }
                At::List(0) => self.at = At::Envelope,
                At::List(left) => {
                    let Some((n, wire, head, len)) = field_header(rest)? else {
                        return Ok(at);
                    };
                    let end = field_end(head, len)?;
                    if end > left {
                        return Err(Malformed("field runs past the end of its message"));
                    }
                    if rest.len() < end {
                        return Ok(at);
                    }
                    let value = &rest[head..end];
                    match (n, wire) {
                        (1, 2) => each_field(value, |n, v| {
                            if n == 3 {
                                self.continue_token = Some(string(v)?).filter(|t| !t.is_empty());
                            }
                            Ok(())
                        })?,
                        (2, 2) => {
                            let item = (self.item)(value, &mut self.interner)?;
                            self.items.push(item);
                        }
                        (2, _) => {
                            return Err(Malformed(
                                "a length-delimited field has another wire type",
                            ));
                        }
                        _ => {}
                    }
                    at += end;
                    self.at = At::List(left - end);
                }
                At::Envelope => {
                    let Some((n, wire, head, len)) = field_header(rest)? else {
                        return Ok(at);
                    };
                    if n == 2 && wire == 2 {
                        // The list itself: decoded field by field as it arrives.
                        at += head;
                        self.seen_list = true;
                        self.at = At::List(len);
                        continue;
                    }
                    let end = field_end(head, len)?;
                    if rest.len() < end {
                        return Ok(at);
                    }
                    let value = &rest[head..end];
                    match (n, wire) {
                        (1, 2) => each_field(value, |n, v| {
                            if n == 2 {
                                self.kind = Some(string(v)?);
                            }
                            Ok(())
                        })?,
                        (3, 2) if !value.is_empty() => {
                            return Err(Malformed("encoded (compressed) content"));
                        }
                        _ => {}
                    }
                    if self.kind.as_deref().is_some_and(|k| k != self.list_kind) {
                        return Err(Malformed("the answer is not the list asked for"));
                    }
                    at += end;
                }
            }
        }
    }

    /// The list, once the whole answer has been fed.
    pub fn finish(self) -> Result<List<T>, Malformed> {
        match self.at {
            At::Envelope if self.pending.is_empty() => {}
            At::Magic if self.pending.is_empty() => {
                return Err(Malformed("no k8s protobuf envelope"));
            }
            _ => return Err(Malformed("the answer ends inside a message")),
        }
        if self.kind.as_deref() != Some(self.list_kind) || !self.seen_list {
            return Err(Malformed("the answer is not the list asked for"));
        }
        Ok(List {
            items: self.items,
            continue_token: self.continue_token,
        })
    }
}

fn pod(b: &[u8]) -> Result<PodObject, Malformed> {
    let mut out = PodObject::default();
    each_field(b, |n, v| {
        match n {
            1 => out.metadata = object_meta(bytes(v)?, |k| POD_ANNOTATIONS.contains(&k))?,
            2 => out.spec = pod_spec(bytes(v)?)?,
            3 => out.status = pod_status(bytes(v)?)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(out)
}

/// A namespace: name, UID, labels, annotations (without kubectl's last-applied copy), owners
/// and phase.
fn namespace(b: &[u8]) -> Result<Namespace, Malformed> {
    let mut out = Namespace::default();
    each_field(b, |n, v| {
        match n {
            1 => out.metadata = object_meta(bytes(v)?, |k| k != LAST_APPLIED)?,
            3 => each_field(bytes(v)?, |n, v| {
                if n == 1 {
                    out.status = Some(NamespaceStatus {
                        phase: Some(string(v)?),
                        ..NamespaceStatus::default()
                    });
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    Ok(out)
}

/// Name, namespace, UID, labels, the annotations `keep` accepts and owner references; managed
/// fields and the rest are skipped unread.
fn object_meta(b: &[u8], keep: fn(&str) -> bool) -> Result<ObjectMeta, Malformed> {
    let mut meta = ObjectMeta::default();
    each_field(b, |n, v| {
        match n {
            // Empty strings are on the wire where JSON omits the field.
            1 => meta.name = Some(string(v)?).filter(|s| !s.is_empty()),
            3 => meta.namespace = Some(string(v)?).filter(|s| !s.is_empty()),
            5 => meta.uid = Some(string(v)?).filter(|s| !s.is_empty()),
            11 => {
                let (k, val) = map_entry(bytes(v)?)?;
                meta.labels.get_or_insert_with(BTreeMap::new).insert(k, val);
            }
            12 => {
                let (k, val) = map_entry(bytes(v)?)?;
                if keep(&k) {
                    meta.annotations
                        .get_or_insert_with(BTreeMap::new)
                        .insert(k, val);
                }
            }
            13 => meta
                .owner_references
                .get_or_insert_with(Vec::new)
                .push(owner_reference(bytes(v)?)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(meta)
}

fn map_entry(b: &[u8]) -> Result<(String, String), Malformed> {
    let (mut key, mut value) = (String::new(), String::new());
    each_field(b, |n, v| {
        match n {
            1 => key = string(v)?,
            2 => value = string(v)?,
            _ => {}
        }
        Ok(())
    })?;
    Ok((key, value))
}

fn owner_reference(b: &[u8]) -> Result<OwnerReference, Malformed> {
    let mut o = OwnerReference::default();
    each_field(b, |n, v| {
        match n {
            1 => o.kind = string(v)?,
            3 => o.name = string(v)?,
            4 => o.uid = string(v)?,
            5 => o.api_version = string(v)?,
            6 => o.controller = Some(varint(v)? != 0),
            7 => o.block_owner_deletion = Some(varint(v)? != 0),
            _ => {}
        }
        Ok(())
    })?;
    Ok(o)
}

fn pod_spec(b: &[u8]) -> Result<PodSpecInfo, Malformed> {
    let mut spec = PodSpecInfo::default();
    each_field(b, |n, v| {
        match n {
            2 => spec.containers.push(container(bytes(v)?)?),
            20 => spec.init_containers.push(container(bytes(v)?)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(spec)
}

fn container(b: &[u8]) -> Result<ContainerInfo, Malformed> {
    let mut c = ContainerInfo::default();
    each_field(b, |n, v| {
        match n {
            1 => c.name = string(v)?,
            2 => c.image = Some(string(v)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok(c)
}

fn pod_status(b: &[u8]) -> Result<PodStatusInfo, Malformed> {
    let mut status = PodStatusInfo::default();
    each_field(b, |n, v| {
        match n {
            1 => status.phase = Some(string(v)?),
            2 => {
                let mut c = ConditionInfo::default();
                each_field(bytes(v)?, |n, v| {
                    match n {
                        1 => c.type_ = string(v)?,
                        2 => c.status = string(v)?,
                        _ => {}
                    }
                    Ok(())
                })?;
                if c.type_ == "Ready" {
                    status.conditions.push(c);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok(status)
}

/// Decodes a protobuf `Status` (how the apiserver answers an error in protobuf).
pub fn status(body: &[u8]) -> Result<Status, Malformed> {
    let (kind, raw) = open_envelope(body)?;
    if kind != "Status" {
        return Err(Malformed("the answer is not a Status"));
    }
    let mut out = Status::default();
    each_field(raw, |n, v| {
        match n {
            2 => out.status = serde_json::from_value(string(v)?.into()).ok(),
            3 => out.message = string(v)?,
            4 => out.reason = string(v)?,
            5 => {
                let mut details = StatusDetails {
                    name: String::new(),
                    group: String::new(),
                    kind: String::new(),
                    uid: String::new(),
                    causes: Vec::new(),
                    retry_after_seconds: 0,
                };
                each_field(bytes(v)?, |n, v| {
                    match n {
                        1 => details.name = string(v)?,
                        2 => details.group = string(v)?,
                        3 => details.kind = string(v)?,
                        5 => details.retry_after_seconds = u32::try_from(varint(v)?).unwrap_or(0),
                        6 => details.uid = string(v)?,
                        _ => {}
                    }
                    Ok(())
                })?;
                out.details = Some(details);
            }
            6 => out.code = u16::try_from(varint(v)?).unwrap_or(0),
            _ => {}
        }
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Decodes a whole `PodList` answer at once.
    fn pod_list(body: &[u8]) -> Result<List<PodInfo>, Malformed> {
        let mut decoder = ListDecoder::pods();
        decoder.feed(body)?;
        decoder.finish()
    }

    /// A minimal protobuf writer, for building answers in tests.
    #[derive(Default)]
    pub struct Msg(pub Vec<u8>);

    impl Msg {
        fn key(&mut self, n: u64, wire: u64) {
            self.varint(n << 3 | wire);
        }
        fn varint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
        }
        pub fn bytes(mut self, n: u64, b: &[u8]) -> Self {
            self.key(n, 2);
            self.varint(b.len() as u64);
            self.0.extend_from_slice(b);
            self
        }
        pub fn str(self, n: u64, s: &str) -> Self {
            self.bytes(n, s.as_bytes())
        }
        pub fn msg(self, n: u64, m: Msg) -> Self {
            self.bytes(n, &m.0)
        }
        pub fn int(mut self, n: u64, v: u64) -> Self {
            self.key(n, 0);
            self.varint(v);
            self
        }
        pub fn fixed64(mut self, n: u64) -> Self {
            self.key(n, 1);
            self.0.extend_from_slice(&[0; 8]);
            self
        }
        pub fn entry(self, n: u64, k: &str, v: &str) -> Self {
            self.msg(n, Msg::default().str(1, k).str(2, v))
        }
    }

    pub fn envelope(kind: &str, raw: Msg) -> Vec<u8> {
        let unknown = Msg::default()
            .msg(1, Msg::default().str(1, "v1").str(2, kind))
            .msg(2, raw);
        [MAGIC, &unknown.0].concat()
    }

    fn injected_pod() -> Msg {
        let meta = Msg::default()
            .str(1, "web-7d4b9-x2")
            .str(3, "shop")
            .str(5, "uid-1")
            .str(6, "42") // resourceVersion: skipped
            .int(7, 3) // generation: skipped
            .msg(8, Msg::default().int(1, 1_700_000_000)) // creationTimestamp: skipped
            .entry(11, "app", "web")
            .entry(11, "istio.io/rev", "1-30-3")
            .entry(12, "sidecar.istio.io/status", "{\"revision\":\"1-30-3\"}")
            .entry(12, LAST_APPLIED, "{huge}")
            .entry(12, "unread/note", "not read by any check")
            .msg(
                13,
                Msg::default()
                    .str(1, "ReplicaSet")
                    .str(3, "web-7d4b9")
                    .str(4, "rs-uid")
                    .str(5, "apps/v1")
                    .int(6, 1),
            )
            .msg(17, Msg::default().str(1, "kube-controller-manager")); // managedFields
        let spec = Msg::default()
            .msg(1, Msg::default().str(1, "volume")) // volumes: skipped
            .msg(2, Msg::default().str(1, "web").str(2, "nginx:1"))
            .msg(
                2,
                Msg::default()
                    .str(1, "istio-proxy")
                    .str(2, "istio/proxyv2:1.30.3"),
            )
            .msg(
                20,
                Msg::default()
                    .str(1, "istio-init")
                    .str(2, "istio/proxyv2:1.30.3"),
            )
            .fixed64(99);
        let status = Msg::default()
            .str(1, "Running")
            .msg(2, Msg::default().str(1, "Initialized").str(2, "True"))
            .msg(
                2,
                Msg::default().str(1, "Ready").str(2, "True").str(6, "msg"),
            )
            .str(5, "10.0.0.1");
        Msg::default().msg(1, meta).msg(2, spec).msg(3, status)
    }

    #[test]
    fn a_pod_list_page_decodes_what_a_pod_info_holds() {
        let list = Msg::default()
            .msg(1, Msg::default().str(2, "99").str(3, "next-token"))
            .msg(2, injected_pod())
            .msg(2, Msg::default().msg(1, Msg::default().str(1, "bare")));
        let page = pod_list(&envelope("PodList", list)).unwrap();
        assert_eq!(page.continue_token.as_deref(), Some("next-token"));
        assert_eq!(page.items.len(), 2);
        let p = &page.items[0];
        assert_eq!((p.namespace(), p.name()), ("shop", "web-7d4b9-x2"));
        assert_eq!(p.uid(), Some("uid-1"));
        assert_eq!(p.label("istio.io/rev"), Some("1-30-3"));
        assert_eq!(
            p.annotation("sidecar.istio.io/status"),
            Some("{\"revision\":\"1-30-3\"}")
        );
        let kept = PodObject::from(p.clone());
        let annotations = kept.metadata.annotations.unwrap_or_default();
        assert!(
            !annotations.contains_key(LAST_APPLIED) && !annotations.contains_key("unread/note"),
            "only annotations a check reads are kept: {annotations:?}"
        );
        assert_eq!(kept.metadata.managed_fields, None);
        assert_eq!(kept.metadata.creation_timestamp, None);
        assert_eq!(kept.metadata.resource_version, None);
        assert_eq!(kept.status.conditions.len(), 1, "only Ready is kept");
        let owner = p.controller().unwrap();
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", "web-7d4b9")
        );
        assert_eq!(owner.api_version, "apps/v1");
        assert_eq!(p.proxy_image(), Some("istio/proxyv2:1.30.3"));
        assert_eq!(p.spec().init_containers[0].name, "istio-init");
        assert!(p.is_ready());
        assert_eq!(page.items[1].name(), "bare");
        assert!(!page.items[1].is_ready());
    }

    #[test]
    fn the_last_page_has_no_token() {
        let list = Msg::default().msg(1, Msg::default().str(3, ""));
        assert_eq!(
            pod_list(&envelope("PodList", list)).unwrap(),
            List {
                items: Vec::new(),
                continue_token: None
            }
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let good = envelope("PodList", Msg::default().msg(2, injected_pod()));
        for cut in 0..good.len() {
            let _ = pod_list(&good[..cut]); // never panics
        }
        assert!(pod_list(&good[..good.len() - 3]).is_err());
        assert_eq!(
            pod_list(b"{\"kind\":\"PodList\"}"),
            Err(Malformed("no k8s protobuf envelope"))
        );
        assert_eq!(
            pod_list(&envelope("Status", Msg::default())),
            Err(Malformed("the answer is not the list asked for"))
        );
        let bad_utf8 =
            Msg::default().msg(2, Msg::default().msg(1, Msg::default().bytes(1, &[0xff])));
        assert!(pod_list(&envelope("PodList", bad_utf8)).is_err());
        let wrong_wire = Msg::default().int(2, 5);
        assert!(pod_list(&envelope("PodList", wrong_wire)).is_err());
        let group = [MAGIC, &[0x0b][..]].concat(); // field 1, wire type 3 (group)
        assert!(pod_list(&group).is_err());
        assert!(pod_list(&[MAGIC, &[0xff; 11][..]].concat()).is_err());
        let compressed = [MAGIC, &Msg::default().str(3, "gzip").0[..]].concat();
        assert!(pod_list(&compressed).is_err());
    }

    /// A field header declaring a length of 2^64 - 1 bytes.
    fn huge_field(n: u64) -> Vec<u8> {
        let mut m = Msg::default();
        m.key(n, 2);
        m.varint(u64::MAX);
        m.0
    }

    #[test]
    fn a_length_that_overflows_is_an_error() {
        // Inside the list: an item whose length does not fit in memory.
        let list = [
            MAGIC,
            &Msg::default().msg(1, Msg::default().str(2, "PodList")).0[..],
        ]
        .concat();
        let mut inside = Msg::default();
        inside.key(2, 2);
        let item = huge_field(2);
        inside.varint(item.len() as u64);
        let body = [&list[..], &inside.0, &item].concat();
        assert_eq!(
            pod_list(&body),
            Err(Malformed("a field's length runs past any answer"))
        );
        // In the envelope: its type field declared as long.
        let body = [MAGIC, &huge_field(1)[..]].concat();
        assert_eq!(
            pod_list(&body),
            Err(Malformed("a field's length runs past any answer"))
        );
        // A length that fits but runs past the list.
        let mut short = Msg::default();
        short.key(2, 2);
        short.varint(3);
        let mut body = [&list[..], &short.0].concat();
        body.extend_from_slice(&Msg::default().str(1, "much longer than three").0);
        assert!(pod_list(&body).is_err());
        // A Status whose message is declared longer than the answer.
        let status_body = [MAGIC, &huge_field(2)[..]].concat();
        assert!(status(&status_body).is_err());
    }

    proptest::proptest! {
        /// A real list answer with bytes overwritten, a varint made huge, or cut: decoding it,
        /// whole or in two parts, is an answer or an error — never a panic.
        #[test]
        fn a_corrupted_list_is_an_error_or_a_list_never_a_panic(
            n in 0usize..4,
            edits in proptest::collection::vec((0usize..4096, 0u8..=255), 1..6),
            huge_at in proptest::option::of(0usize..4096),
            cut in proptest::option::of(0usize..4096),
            split in 0usize..4096,
        ) {
            let mut body = list_of(n);
            for (at, byte) in edits {
                let i = at % body.len();
                body[i] = byte;
            }
            if let Some(at) = huge_at {
                let i = at % body.len();
                let mut v = Msg::default();
                v.varint(u64::MAX - 1);
                body.splice(i..i, v.0);
            }
            if let Some(c) = cut {
                body.truncate(c % (body.len() + 1));
            }
            let _ = pod_list(&body);
            let mut d = ListDecoder::pods();
            let at = split % (body.len() + 1);
            if d.feed(&body[..at]).is_ok() && d.feed(&body[at..]).is_ok() {
                let _ = d.finish();
            }
            let _ = status(&body);
        }

        /// A real list answer whose `k`-th pod declares a length of its own choosing (from 0
        /// to 2^64 - 1): an answer or an error, never a panic.
        #[test]
        fn a_list_with_a_false_length_is_an_error_or_a_list_never_a_panic(
            n in 1usize..4,
            k in 0usize..4,
            declared in proptest::prop_oneof![
                proptest::prelude::any::<u64>(),
                (u64::MAX - 64)..=u64::MAX,
                0u64..2048,
            ],
        ) {
            let mut list = Msg::default().msg(1, Msg::default().str(2, "99"));
            for i in 0..n {
                let pod = injected_pod().0;
                list.key(2, 2);
                list.varint(if i == k % n { declared } else { pod.len() as u64 });
                list.0.extend_from_slice(&pod);
            }
            let body = envelope("PodList", list);
            let decoded = pod_list(&body);
            let true_len = injected_pod().0.len() as u64;
            proptest::prop_assert!(decoded.is_err() || declared <= true_len + 64);
        }
    }

    /// A list of `n` pods of two kinds, as the apiserver would send it.
    fn list_of(n: usize) -> Vec<u8> {
        let mut list = Msg::default().msg(1, Msg::default().str(2, "99"));
        for i in 0..n {
            list = if i % 2 == 0 {
                list.msg(2, injected_pod())
            } else {
                list.msg(
                    2,
                    Msg::default().msg(1, Msg::default().str(1, "bare").str(3, "x")),
                )
            };
        }
        envelope("PodList", list)
    }

    #[test]
    fn a_list_decodes_the_same_however_its_bytes_arrive() {
        let body = list_of(5);
        let whole = pod_list(&body).unwrap();
        assert_eq!(whole.items.len(), 5);
        for cut in 0..=body.len() {
            let mut d = ListDecoder::pods();
            d.feed(&body[..cut]).unwrap();
            d.feed(&body[cut..]).unwrap();
            assert_eq!(d.finish().unwrap(), whole, "split at byte {cut}");
        }
        let mut d = ListDecoder::pods();
        for b in &body {
            d.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(d.finish().unwrap(), whole, "a byte at a time");
    }

    #[test]
    fn a_list_is_decoded_pod_by_pod_as_it_arrives() {
        let body = list_of(40);
        let mut d = ListDecoder::pods();
        let mut held = 0;
        for chunk in body.chunks(64) {
            d.feed(chunk).unwrap();
            held = held.max(d.pending.len());
        }
        let pod_bytes = Msg::default().msg(2, injected_pod()).0.len();
        assert!(
            held < pod_bytes + 64,
            "at most one pod's bytes and one read are held, not the answer: {held} of {}",
            body.len()
        );
        assert_eq!(d.finish().unwrap().items.len(), 40);
    }

    #[test]
    fn pods_with_the_same_parts_share_them() {
        let page = pod_list(&list_of(4)).unwrap();
        let (a, b) = (&page.items[0], &page.items[2]);
        assert_eq!(a, b);
        assert!(std::ptr::eq(a.labels(), b.labels()), "labels are shared");
        assert!(std::ptr::eq(a.spec(), b.spec()), "containers are shared");
        assert!(std::ptr::eq(a.owners(), b.owners()), "owners are shared");
        assert!(!std::ptr::eq(a.labels(), page.items[1].labels()));
    }

    #[test]
    fn a_cut_or_foreign_answer_is_an_error() {
        let body = list_of(3);
        for cut in 1..body.len() {
            let mut d = ListDecoder::pods();
            let fed = d.feed(&body[..cut]);
            assert!(
                fed.is_err() || d.finish().is_err(),
                "an answer cut at byte {cut} is not a whole list"
            );
        }
        let mut d = ListDecoder::pods();
        assert_eq!(
            d.feed(&envelope(
                "ConfigMapList",
                Msg::default().msg(2, injected_pod())
            )),
            Err(Malformed("the answer is not the list asked for"))
        );
        let no_kind = [MAGIC, &Msg::default().msg(2, Msg::default()).0[..]].concat();
        assert_eq!(
            pod_list(&no_kind),
            Err(Malformed("the answer is not the list asked for"))
        );
    }

    #[test]
    fn an_error_answer_decodes_to_its_status() {
        let s = Msg::default()
            .str(2, "Failure")
            .str(3, "pods is forbidden")
            .str(4, "Forbidden")
            .msg(5, Msg::default().str(3, "pods").int(5, 2))
            .int(6, 403);
        let status = status(&envelope("Status", s)).unwrap();
        assert_eq!(status.code, 403);
        assert_eq!(status.message, "pods is forbidden");
        assert_eq!(status.reason, "Forbidden");
        assert_eq!(status.details.unwrap().retry_after_seconds, 2);
    }
}
