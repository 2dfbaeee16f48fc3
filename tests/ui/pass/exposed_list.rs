//! `exposed = [..]` picks the methods; a private helper stays on the server side.

use managers::shared;
use managers::traits::Shared;

/// A temperature in tenths of a degree.
pub struct Thermometer {
    tenths: i32,
}

#[shared(exposed = [celsius, set_celsius])]
impl Thermometer {
    /// The temperature in degrees.
    pub fn celsius(&self) -> f64 {
        self.degrees()
    }

    /// Set the temperature in degrees.
    pub fn set_celsius(&mut self, degrees: f64) {
        self.tenths = (degrees * 10.0).round() as i32;
    }

    /// Public, but not listed: not on the proxy.
    pub fn raw(&self) -> i32 {
        self.tenths
    }

    /// A private helper, left unexposed.
    fn degrees(&self) -> f64 {
        f64::from(self.tenths) / 10.0
    }
}

/// The listed methods exist on the proxy.
async fn use_proxy(proxy: ThermometerProxy) -> Result<f64, managers::Error> {
    proxy.set_celsius(21.5).await?;
    proxy.celsius().await
}

fn main() {
    let names: Vec<&str> = Thermometer::METHODS.iter().map(|m| m.name).collect();
    assert_eq!(names, ["celsius", "set_celsius"]);
    assert!(Thermometer::HIDDEN.contains(&"raw"));
    assert!(Thermometer::HIDDEN.contains(&"degrees"));

    let mut t = Thermometer { tenths: 0 };
    t.set_celsius(1.5);
    assert_eq!(t.raw(), 15);
    assert_eq!(t.celsius(), 1.5);
    let _ = use_proxy;
}
