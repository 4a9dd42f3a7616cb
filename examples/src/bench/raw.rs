//! Hand-written memcached probes over a plain TCP socket: the floor a cache-aware
//! index scan cannot beat (the same two pipelined round trips, requests built in
//! advance, replies only framed, never decoded), and the naive pattern of one
//! blocking `get` per key.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// One connection speaking just enough of the text and meta protocols.
#[derive(Debug)]
pub struct RawConn {
    stream: TcpStream,
    /// Received bytes; `buf[pos..]` is not consumed yet. A cursor rather than
    /// draining the front keeps framing a 100-value reply linear.
    buf: Vec<u8>,
    pos: usize,
}

/// What one pipelined batch returned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub hits: usize,
    pub misses: usize,
    pub value_bytes: usize,
}

fn protocol(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl RawConn {
    pub fn connect(addr: &str) -> io::Result<RawConn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(RawConn { stream, buf: Vec::with_capacity(64 * 1024), pos: 0 })
    }

    /// Sends a prebuilt request (one or more `mg` lines ending in `mn`) in one write,
    /// and frames the replies up to `MN` without looking inside values.
    pub fn pipelined(&mut self, request: &[u8]) -> io::Result<Batch> {
        self.stream.write_all(request)?;
        let mut batch = Batch::default();
        loop {
            let range = self.read_line()?;
            let line = &self.buf[range];
            if line == b"MN" {
                return Ok(batch);
            } else if line == b"EN" {
                batch.misses += 1;
            } else if let Some(rest) = line.strip_prefix(b"VA ") {
                let size = parse_size(rest.split(|&b| b == b' ').next().unwrap_or_default())?;
                self.skip(size + 2)?;
                batch.hits += 1;
                batch.value_bytes += size;
            } else {
                return Err(unexpected(line));
            }
        }
    }

    /// Sends a prebuilt classic `get` of one key and frames its reply.
    pub fn get_prebuilt(&mut self, request: &[u8]) -> io::Result<usize> {
        self.multi_get(request).map(|(bytes, _)| bytes)
    }

    /// Sends a prebuilt classic `get` of any number of keys and frames the reply
    /// stream: the value bytes and how many values came.
    pub fn multi_get(&mut self, request: &[u8]) -> io::Result<(usize, usize)> {
        self.multi_get_each(request, |_| Ok(()))
    }

    /// [`RawConn::multi_get`], handing each value's bytes to `each` as it is framed
    /// (an error from it ends the read, and the connection is then out of step).
    pub fn multi_get_each(
        &mut self,
        request: &[u8],
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<(usize, usize)> {
        self.stream.write_all(request)?;
        let (mut size, mut values) = (0, 0);
        loop {
            let range = self.read_line()?;
            let line = &self.buf[range];
            if line == b"END" {
                return Ok((size, values));
            }
            let Some(rest) = line.strip_prefix(b"VALUE ") else {
                return Err(unexpected(line));
            };
            let n = parse_size(rest.rsplit(|&b| b == b' ').next().unwrap_or_default())?;
            self.fill(n + 2)?;
            each(&self.buf[self.pos..self.pos + n])?;
            self.pos += n + 2;
            size += n;
            values += 1;
        }
    }

    /// Reads until at least `n` unconsumed bytes are buffered.
    fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        // Read straight into the buffer's tail: zeroing a scratch array on every call
        // would cost more than framing the replies.
        while self.buf.len() - self.pos < n {
            let filled = self.buf.len();
            self.buf.resize(filled + 16 * 1024, 0);
            let got = self.stream.read(&mut self.buf[filled..]);
            self.buf.truncate(filled + *got.as_ref().unwrap_or(&0));
            if got? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "memcached closed the connection"));
            }
        }
        Ok(())
    }

    fn skip(&mut self, n: usize) -> io::Result<()> {
        self.fill(n)?;
        self.pos += n;
        Ok(())
    }

    /// Where the next `\r\n`-terminated line lies in `buf`, without the terminator.
    /// Valid until the next read.
    fn read_line(&mut self) -> io::Result<std::ops::Range<usize>> {
        let mut searched = 0;
        loop {
            let unread = &self.buf[self.pos..];
            if let Some(at) = unread[searched..].windows(2).position(|w| w == b"\r\n") {
                let start = self.pos;
                let end = start + searched + at;
                self.pos = end + 2;
                return Ok(start..end);
            }
            searched = unread.len().saturating_sub(1);
            let want = unread.len() + 1;
            self.fill(want)?;
        }
    }
}

fn unexpected(line: &[u8]) -> io::Error {
    protocol(format!("unexpected reply {:?}", String::from_utf8_lossy(line)))
}

fn parse_size(digits: &[u8]) -> io::Result<usize> {
    std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| protocol(format!("bad size {}", String::from_utf8_lossy(digits))))
}

/// `mg <key> v` for each key, then `mn`: one pipelined request.
pub fn meta_get_request<'k>(keys: impl IntoIterator<Item = &'k str>) -> Vec<u8> {
    let mut req = Vec::new();
    for key in keys {
        req.extend_from_slice(b"mg ");
        req.extend_from_slice(key.as_bytes());
        req.extend_from_slice(b" v\r\n");
    }
    req.extend_from_slice(b"mn\r\n");
    req
}

/// The floor: the node batch, then the object batch, both prebuilt.
#[derive(Debug)]
pub struct FloorProbe {
    conn: RawConn,
    nodes: Vec<u8>,
    objects: Vec<u8>,
    expected_objects: usize,
}

impl FloorProbe {
    pub fn new(addr: &str, node_keys: &[String], object_keys: &[String]) -> io::Result<FloorProbe> {
        Ok(FloorProbe {
            conn: RawConn::connect(addr)?,
            nodes: meta_get_request(node_keys.iter().map(String::as_str)),
            objects: meta_get_request(object_keys.iter().map(String::as_str)),
            expected_objects: object_keys.len(),
        })
    }

    /// Two round trips. An error if any key missed: the floor is only a floor
    /// when every value was really transferred.
    pub fn run(&mut self) -> io::Result<usize> {
        let node_bytes = self.run_nodes()?;
        let objects = self.conn.pipelined(&self.objects)?;
        if objects.hits != self.expected_objects {
            return Err(protocol(format!("floor probe: {} of {} objects", objects.hits, self.expected_objects)));
        }
        Ok(node_bytes + objects.value_bytes)
    }

    /// One round trip: the nodes alone, what a hot fetch whose objects are kept
    /// decoded in the process must move. An error if any node missed.
    pub fn run_nodes(&mut self) -> io::Result<usize> {
        let nodes = self.conn.pipelined(&self.nodes)?;
        if nodes.misses > 0 {
            return Err(protocol(format!("floor probe: {} node misses", nodes.misses)));
        }
        Ok(nodes.value_bytes)
    }
}

/// The naive pattern: one blocking `get` per key, node first, then each object.
#[derive(Debug)]
pub struct NaiveProbe {
    conn: RawConn,
    requests: Vec<Vec<u8>>,
}

impl NaiveProbe {
    pub fn new(addr: &str, node_keys: &[String], object_keys: &[String]) -> io::Result<NaiveProbe> {
        let requests = node_keys.iter().chain(object_keys).map(|k| format!("get {k}\r\n").into_bytes()).collect();
        Ok(NaiveProbe { conn: RawConn::connect(addr)?, requests })
    }

    /// One round trip per key; returns the bytes received.
    pub fn run(&mut self) -> io::Result<usize> {
        let mut total = 0;
        for req in &self.requests {
            total += self.conn.get_prebuilt(req)?;
        }
        Ok(total)
    }
}

/// The one-round-trip floor: the node alone (`mg <node> v`, `mn`). This is all a
/// hot fetch has to move when the objects it lists are already decoded in the
/// process, at the versions the node names.
#[derive(Debug)]
pub struct NodeOnlyProbe {
    conn: RawConn,
    request: Vec<u8>,
}

impl NodeOnlyProbe {
    pub fn new(addr: &str, node_keys: &[String]) -> io::Result<NodeOnlyProbe> {
        Ok(NodeOnlyProbe {
            conn: RawConn::connect(addr)?,
            request: meta_get_request(node_keys.iter().map(String::as_str)),
        })
    }

    pub fn run(&mut self) -> io::Result<usize> {
        let nodes = self.conn.pipelined(&self.request)?;
        if nodes.misses > 0 {
            return Err(protocol(format!("node-only probe: {} node misses", nodes.misses)));
        }
        Ok(nodes.value_bytes)
    }
}

/// The classic text protocol's multi-get, two round trips: `get <node>`, then one
/// `get <k1> … <kn>` of every object (memcached answers it as one reply stream,
/// the cheapest way to move these bytes).
#[derive(Debug)]
pub struct MultiGetProbe {
    conn: RawConn,
    nodes: Vec<u8>,
    objects: Vec<u8>,
}

impl MultiGetProbe {
    pub fn new(addr: &str, node_keys: &[String], object_keys: &[String]) -> io::Result<MultiGetProbe> {
        let line = |keys: &[String]| format!("get {}\r\n", keys.join(" ")).into_bytes();
        Ok(MultiGetProbe { conn: RawConn::connect(addr)?, nodes: line(node_keys), objects: line(object_keys) })
    }

    /// Returns the value bytes received; an error when a node or object is missing.
    pub fn run(&mut self, expected_objects: usize) -> io::Result<usize> {
        self.run_each(expected_objects, |_| Ok(()))
    }

    /// The same two round trips, each object decoded by `decode` as it is framed: the
    /// least a client that answers with structs does over these bytes (it knows the
    /// keys beforehand, so it decodes no node; it computes no etag and checks nothing).
    pub fn run_decoding<T>(
        &mut self,
        expected_objects: usize,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> io::Result<Vec<T>> {
        let mut rows = Vec::with_capacity(expected_objects);
        self.run_each(expected_objects, |value| {
            rows.push(decode(value).ok_or_else(|| protocol("multi-get probe: an object that does not decode"))?);
            Ok(())
        })?;
        Ok(rows)
    }

    /// The two round trips, each object's bytes handed to `each`: the value bytes
    /// received, or an error when a node or object is missing.
    fn run_each(&mut self, expected_objects: usize, each: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<usize> {
        let (node_bytes, nodes) = self.conn.multi_get(&self.nodes)?;
        let (object_bytes, objects) = self.conn.multi_get_each(&self.objects, each)?;
        if nodes == 0 || objects != expected_objects {
            return Err(protocol(format!("multi-get probe: {nodes} nodes, {objects} of {expected_objects} objects")));
        }
        Ok(node_bytes + object_bytes)
    }
}
