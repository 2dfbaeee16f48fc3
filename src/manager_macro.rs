/// Declare a manager type with one typed creation method per typeid (Python's
/// `create_method`: `manager.get_pair(1, 3)` returning a proxy).
///
/// Each line `fn typeid(args...) -> ProxyType;` becomes an `async fn` that creates an
/// object of that typeid on the server and returns the typed proxy; write
/// `fn method(args...) -> ProxyType as "Typeid";` when the typeid is not the method's name.
/// The type wraps a [`Client`](crate::Client) and derefs to it.
///
/// ```
/// use managers::{manager, shared, Registration, ServerBuilder};
///
/// pub struct Counter(u64);
///
/// #[shared]
/// impl Counter {
///     pub fn incr(&mut self, by: u64) -> u64 {
///         self.0 += by;
///         self.0
///     }
/// }
///
/// manager! {
///     /// The client side of a counter server.
///     pub struct CounterManager {
///         /// A new counter starting at `start`.
///         fn counter(start: u64) -> CounterProxy;
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), managers::Error> {
/// let server = ServerBuilder::new()
///     .register(Registration::constructor("counter", |(start,)| Counter(start)))
///     .start()
///     .await?;
/// let manager = CounterManager::connect(server.address(), server.authkey().clone()).await?;
/// let counter = manager.counter(40).await?;
/// assert_eq!(counter.incr(2).await?, 42);
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! manager {
    (@typeid $method:ident $typeid:literal) => { $typeid };
    (@typeid $method:ident) => { stringify!($method) };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                fn $method:ident ( $($arg:ident : $ty:ty),* $(,)? ) -> $proxy:ty $(as $typeid:literal)?;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        $vis struct $name {
            client: $crate::__private::Client,
        }

        impl $name {
            /// Connect to the manager at `address` with `authkey`.
            ///
            /// Cancel safe: dropping it closes the connection being opened; nothing is
            /// left behind.
            $vis async fn connect(
                address: impl $crate::__private::IntoAddress,
                authkey: impl ::core::convert::Into<$crate::__private::AuthKey>,
            ) -> ::core::result::Result<Self, $crate::__private::Error> {
                ::core::result::Result::Ok(Self {
                    client: $crate::__private::Client::connect(address, authkey).await?,
                })
            }

            /// Use an existing connection.
            $vis fn from_client(client: $crate::__private::Client) -> Self {
                Self { client }
            }

            /// The underlying connection.
            $vis fn client(&self) -> &$crate::__private::Client {
                &self.client
            }

            $(
                $(#[$fmeta])*
                #[doc = ""]
                #[doc = concat!(
                    " Creates an object of typeid `",
                    $crate::manager!(@typeid $method $($typeid)?),
                    "` on the manager."
                )]
                ///
                /// Cancel safety: once polled, the object may be created even if the future
                /// is dropped; it is then released as its reply arrives.
                $vis async fn $method(
                    &self,
                    $($arg: $ty),*
                ) -> ::core::result::Result<$proxy, $crate::__private::Error> {
                    self.client
                        .create($crate::manager!(@typeid $method $($typeid)?), ($($arg,)*))
                        .await
                }
            )*
        }

        impl ::core::ops::Deref for $name {
            type Target = $crate::__private::Client;
            fn deref(&self) -> &Self::Target {
                &self.client
            }
        }
    };
}
