//! The expansion names everything by absolute path: it compiles in a module without the
//! prelude, next to items that shadow common names.

mod inner {
    #![no_implicit_prelude]
    #![allow(dead_code)]

    // Shadow names a careless expansion might use unqualified.
    struct Result;
    struct Option;
    struct Box;
    struct Vec;
    struct String;
    struct Send;
    struct Sync;
    struct Clone;
    struct Debug;
    mod core {}
    mod std {}
    mod managers {}
    mod __private {}

    /// A shared value defined without the prelude.
    pub struct Cell {
        value: ::std::string::String,
    }

    #[::managers::shared(async_holds_lock)]
    impl Cell {
        /// Construct; not exposed.
        pub fn new(value: ::std::string::String) -> Self {
            Cell { value }
        }

        /// A copy of the value.
        pub fn get(&self) -> ::std::string::String {
            ::std::clone::Clone::clone(&self.value)
        }

        /// Replace the value.
        pub fn set(&mut self, value: ::std::string::String) {
            self.value = value;
        }

        /// A fallible method.
        pub fn parse(&self) -> ::std::result::Result<i64, ::std::string::String> {
            ::std::result::Result::map_err(::core::str::FromStr::from_str(&self.value), |e| {
                ::std::string::ToString::to_string(&e)
            })
        }

        /// An async method with an optional argument.
        pub async fn len_or(&self, default: ::std::option::Option<u32>) -> u32 {
            let len = self.value.len() as u32;
            if len == 0 {
                ::std::option::Option::unwrap_or(default, 0)
            } else {
                len
            }
        }
    }

    /// The proxy is nameable here too.
    pub fn proxy_name(_: &CellProxy) {}

    /// Typed errors, a method-level attribute and `errors = value`, without the prelude.
    pub struct Typed;

    #[::managers::shared(errors = typed, proxy = TypedCalls, custom_proxy = TypedProxy)]
    impl Typed {
        /// A typed error.
        pub fn check(&self, n: u64) -> ::std::result::Result<u64, u8> {
            if n > 0 {
                ::std::result::Result::Ok(n)
            } else {
                ::std::result::Result::Err(7)
            }
        }

        /// Its error as text.
        #[::managers::shared(errors = display)]
        pub fn text(&self) -> ::std::result::Result<u64, ::std::string::String> {
            ::std::result::Result::Ok(1)
        }

        /// The `Result` as the value.
        #[::managers::shared(errors = value)]
        pub fn whole(&self) -> ::std::result::Result<u64, u8> {
            ::std::result::Result::Ok(2)
        }

        /// A plain value.
        pub fn plain(&self) -> u64 {
            3
        }
    }

    /// A custom proxy wrapping the generated one, derived without the prelude.
    #[derive(::managers::Proxy)]
    #[proxy(target = Typed, clone, debug, deref)]
    pub struct TypedProxy {
        #[proxy(inner)]
        calls: TypedCalls,
    }

    /// A generic one, over a handle.
    #[derive(::managers::Proxy)]
    #[proxy(target = Typed, clone, debug)]
    pub struct Labelled<T> {
        handle: ::managers::ProxyHandle,
        marker: ::std::marker::PhantomData<fn() -> T>,
    }
}

fn main() {
    let cell = inner::Cell::new("12".to_owned());
    assert_eq!(cell.parse(), Ok(12));
    let _ = inner::proxy_name;
}
