//! `Address`: the string syntax, families and `arbitrary_address`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use mp_connection::{arbitrary_address, Address, Family};

#[test]
fn parses_every_form() {
    let cases: &[(&str, Address)] = &[
        ("127.0.0.1:6000", Address::tcp(Ipv4Addr::LOCALHOST, 6000)),
        ("[::1]:6000", Address::tcp(Ipv6Addr::LOCALHOST, 6000)),
        ("localhost:6000", Address::tcp(Ipv4Addr::LOCALHOST, 6000)),
        ("LOCALHOST:0", Address::tcp(Ipv4Addr::LOCALHOST, 0)),
        ("/tmp/listener.sock", Address::unix("/tmp/listener.sock")),
        ("relative.sock", Address::unix("relative.sock")),
        ("./host:80", Address::unix("./host:80")),
        ("/odd/path:80", Address::unix("/odd/path:80")),
        ("@name", Address::abstract_name(b"name".to_vec())),
        ("\0name", Address::abstract_name(b"name".to_vec())),
        ("@", Address::abstract_name(Vec::new())),
    ];
    for (s, want) in cases {
        assert_eq!(&s.parse::<Address>().unwrap(), want, "{s:?}");
    }
}

#[test]
fn rejects_what_is_not_an_address() {
    for s in ["", "example.com:80", "host:99999", "localhost:65536"] {
        let err = s.parse::<Address>().unwrap_err();
        assert!(
            matches!(err, mp_connection::Error::InvalidAddress(_)),
            "{s:?}: {err:?}"
        );
        assert!(err.to_string().starts_with("invalid address"), "{err}");
    }
}

#[test]
fn display_round_trips() {
    for s in [
        "127.0.0.1:6000",
        "[::1]:6000",
        "/tmp/x.sock",
        "@abstract-name",
    ] {
        let a: Address = s.parse().unwrap();
        assert_eq!(a.to_string(), s);
        assert_eq!(a.to_string().parse::<Address>().unwrap(), a);
    }
}

#[test]
fn families() {
    assert_eq!(Address::default_family(), Family::Unix);
    assert_eq!(
        Address::from("127.0.0.1:1".parse::<SocketAddr>().unwrap()).family(),
        Family::Tcp
    );
    assert_eq!(Address::from(PathBuf::from("/x")).family(), Family::Unix);
    assert_eq!(Address::abstract_name(*b"x").family(), Family::Abstract);
}

#[test]
fn arbitrary_addresses_are_fresh() {
    assert_eq!(
        arbitrary_address(Family::Tcp).unwrap(),
        Address::tcp(Ipv4Addr::LOCALHOST, 0)
    );
    let a = arbitrary_address(Family::Abstract).unwrap();
    let b = arbitrary_address(Family::Abstract).unwrap();
    assert_ne!(a, b);

    let Address::Unix(p) = arbitrary_address(Family::Unix).unwrap() else {
        panic!()
    };
    let Address::Unix(q) = arbitrary_address(Family::Unix).unwrap() else {
        panic!()
    };
    assert_ne!(p, q);
    for path in [&p, &q] {
        assert!(path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("listener-"));
        let dir = path.parent().unwrap();
        assert!(dir.starts_with(std::env::temp_dir()));
        let meta = std::fs::metadata(dir).unwrap();
        assert!(meta.is_dir());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert!(!path.exists(), "nothing is bound there yet");
        std::fs::remove_dir(dir).unwrap();
    }
}

#[test]
fn too_long_a_path_is_an_invalid_address() {
    let long = format!("/tmp/{}", "x".repeat(200));
    let err = mp_connection::Listener::bind(Some(Address::unix(long)), Some(1), None).unwrap_err();
    assert!(
        matches!(err, mp_connection::Error::InvalidAddress(_)),
        "{err:?}"
    );
}
