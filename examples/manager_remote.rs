//! Python's remote manager example: a server shares a queue over TCP with a key; one process
//! connects and puts, another connects and gets.
//!
//! ```python
//! # the server
//! from multiprocessing.managers import BaseManager
//! from queue import Queue
//! queue = Queue()
//! class QueueManager(BaseManager): pass
//! QueueManager.register('get_queue', callable=lambda:queue)
//! m = QueueManager(address=('', 50000), authkey=b'abracadabra')
//! s = m.get_server()
//! s.serve_forever()
//!
//! # one client
//! m = QueueManager(address=('foo.bar.org', 50000), authkey=b'abracadabra')
//! m.connect()
//! queue = m.get_queue()
//! queue.put('hello')
//!
//! # another client
//! m = QueueManager(address=('foo.bar.org', 50000), authkey=b'abracadabra')
//! m.connect()
//! queue = m.get_queue()
//! queue.get()        # 'hello'
//! ```
//!
//! Here the three are processes of one program on 127.0.0.1; across machines, bind
//! `0.0.0.0:50000` and connect to the server's host.

use std::net::Ipv4Addr;
use std::time::Duration;

use multiprocessing::connection::Address;
use multiprocessing::managers::{Manager, QueueProxy, Server};
use multiprocessing::{get_context, pipe, Connection, StartMethod};

const AUTHKEY: &[u8] = b"abracadabra";

fn serve(mut report: Connection) {
    let server = Server::bind(Some(Address::tcp(Ipv4Addr::LOCALHOST, 0)), AUTHKEY).expect("bind");
    server.share("get_queue", "Queue").expect("share");
    report.send(&server.address().to_string()).expect("report");
    server.serve_forever().expect("serve");
}

fn put_hello(address: String) {
    let m = Manager::connect(address.parse().expect("address"), AUTHKEY).expect("connect");
    let queue: QueueProxy<String> = m.shared("get_queue").expect("get_queue");
    queue.put("hello".into()).expect("put");
}

/// Runs the example.
pub fn main() {
    let ctx = get_context(Some(StartMethod::Spawn));
    let (mut ours, theirs) = pipe(true).expect("pipe");
    let mut server = ctx.process(serve, theirs);
    server.start().expect("server");
    let address: String = ours.recv_timeout(Duration::from_secs(30)).expect("address");

    let mut client = ctx.process(put_hello, address.clone());
    client.start().expect("client");
    client.join().expect("join");

    let mut m = Manager::connect(address.parse().expect("address"), AUTHKEY).expect("connect");
    let queue: QueueProxy<String> = m.shared("get_queue").expect("get_queue");
    // Python's REPL shows the repr: 'hello'.
    println!(
        "'{}'",
        queue.get_timeout(Duration::from_secs(30)).expect("get")
    );
    m.shutdown().expect("shutdown");
    server.join().expect("server");
}
