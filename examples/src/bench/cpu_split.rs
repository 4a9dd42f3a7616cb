//! Where the two-round-trip path's time goes (`bench --cpu-split N`): memdex's fetch
//! with the near cache off against the two raw floors over the same keys (pipelined
//! `mg`, and the classic multi-get), interleaved in blocks, with the CPU time of each side split between the client
//! process and memcached. Pinned to one core (`taskset -c 0`) the wall time of a
//! fetch is the sum of the two, so the split says whose work a ratio is made of.
//!
//! CPU time comes from the kernel's scheduler statistics (`/proc/<pid>/task/*/schedstat`,
//! nanoseconds on the CPU per thread), read around each block; the client's count
//! includes the kernel's TCP work done on its behalf (on loopback the sender runs the
//! receiver's protocol processing too), which is part of what a fetch costs.

use std::time::Instant;

use super::data::Dataset;
use super::{memdex_side, raw, servers};

/// Fetches per block: enough that reading the counters (a few µs) is noise.
const BLOCK: usize = 100;

/// One side's median wall time and CPU time per fetch, in µs.
#[derive(Clone, Copy, Debug)]
pub struct SideSplit {
    pub median: f64,
    pub client_cpu: f64,
    pub memcached_cpu: f64,
}

/// memdex (near cache off), the pipelined-`mg` floor, the classic multi-get floor
/// (`get` of the node, then one `get k1 … kn`), and the classic floor decoding each
/// value into the structs memdex returns (the least a typed client does).
#[derive(Clone, Copy, Debug)]
pub struct CpuSplit {
    pub memdex: SideSplit,
    pub pipelined: SideSplit,
    pub classic: SideSplit,
    pub classic_decoding: SideSplit,
}

/// Runs `iterations` fetches of each side over a hot category of `objects` objects.
pub fn two_round_trips(objects: usize, iterations: usize) -> Result<CpuSplit, String> {
    let memcached = servers::Memcached::start(64).map_err(|e| e.to_string())?;
    let addrs = vec![memcached.addr()];
    let data = Dataset::new(&[(1, objects)]);
    let store = memdex_side::open_without_near(&memdex_side::DbTarget::SqliteInMemory, &addrs)?;
    store.load(&data.rows)?;
    store.hot(1)?;
    let (node_keys, object_keys) = memdex_side::keys(1, data.ids(1));
    let io = |e: std::io::Error| e.to_string();
    let mut pipelined = raw::FloorProbe::new(&addrs[0], &node_keys, &object_keys).map_err(io)?;
    let mut classic = raw::MultiGetProbe::new(&addrs[0], &node_keys, &object_keys).map_err(io)?;
    let mut decoding = raw::MultiGetProbe::new(&addrs[0], &node_keys, &object_keys).map_err(io)?;
    let decode = memdex::__private::object_decoder::<memdex_side::Item>();
    let mut fetches: [Box<dyn FnMut() -> Result<(), String> + '_>; 4] = [
        Box::new(|| checked(store.hot(1)?, objects)),
        Box::new(|| pipelined.run().map(drop).map_err(io)),
        Box::new(|| classic.run(objects).map(drop).map_err(io)),
        Box::new(|| decoding.run_decoding(objects, &decode).map(drop).map_err(io)),
    ];
    let client = std::process::id();
    let server = memcached.pid();
    let mut sides: [Side; 4] = Default::default();
    let mut done = 0;
    while done < iterations {
        for (fetch, side) in fetches.iter_mut().zip(&mut sides) {
            let (client_before, server_before) = (cpu_ns(client)?, cpu_ns(server)?);
            for _ in 0..BLOCK {
                let t = Instant::now();
                fetch()?;
                side.samples.push(t.elapsed().as_nanos() as f64);
            }
            side.client_ns += cpu_ns(client)? - client_before;
            side.server_ns += cpu_ns(server)? - server_before;
        }
        done += BLOCK;
    }
    let [memdex, pipelined, classic, classic_decoding] = sides.map(Side::split);
    Ok(CpuSplit { memdex, pipelined, classic, classic_decoding })
}

#[derive(Default)]
struct Side {
    samples: Vec<f64>,
    client_ns: u64,
    server_ns: u64,
}

impl Side {
    fn split(self) -> SideSplit {
        let fetches = self.samples.len().max(1) as f64;
        SideSplit {
            client_cpu: self.client_ns as f64 / fetches / 1000.0,
            memcached_cpu: self.server_ns as f64 / fetches / 1000.0,
            median: median(self.samples) / 1000.0,
        }
    }
}

fn checked(rows: usize, want: usize) -> Result<(), String> {
    if rows == want { Ok(()) } else { Err(format!("the hot fetch returned {rows} rows, not {want}")) }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Nanoseconds this process's threads have spent on a CPU (the client's share of
/// a case that talks to servers in other processes, the kernel's loopback work on
/// its behalf included).
pub fn own_cpu_ns() -> Result<u64, String> {
    cpu_ns(std::process::id())
}

/// Nanoseconds process `pid`'s threads have spent on a CPU.
fn cpu_ns(pid: u32) -> Result<u64, String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|e| format!("/proc/{pid}/task: {e}"))?;
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread that exited since the directory was read has no schedstat any more.
        if let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) {
            total += stat.split_whitespace().next().and_then(|ns| ns.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Ok(total)
}
