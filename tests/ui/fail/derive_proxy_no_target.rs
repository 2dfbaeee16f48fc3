#[derive(Clone, managers::Proxy)]
pub struct MyProxy {
    handle: managers::ProxyHandle,
}

fn main() {}
