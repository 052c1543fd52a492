//! User types on a manager's server: Python's `BaseManager.register(typeid, callable)`.
//!
//! A type implements [`Exposed`] (its methods, called by name, on dynamically typed arguments)
//! and is registered with the manager ([`ManagerBuilder::register`](crate::ManagerBuilder::register));
//! [`exposed!`](crate::exposed) writes both the trait's implementation and a typed proxy from a
//! list of method signatures, so that registering a type takes a few lines and no build step.

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::protocol::RemoteKind;

/// A method's failure on the server: Python's exception class and message.
pub type Fail = (RemoteKind, String);

/// A type a manager's server can hold, whose methods proxies call by name.
///
/// Python: a class registered with `BaseManager.register(typeid, callable, exposed=...)`. Write
/// it with [`exposed!`](crate::exposed) rather than by hand. Only the methods `call_method`
/// dispatches are exposed; any other name is an `AttributeError` (`RemoteKind::AttributeError`).
pub trait Exposed: Send + 'static {
    /// The type id it is registered under (the type's name, with `exposed!`).
    const TYPEID: &'static str;
    /// Calls `method` with `args`.
    fn call_method(&mut self, method: &str, args: Vec<Value>) -> Result<Value, Fail>;
    /// The type id of the object `method`'s result becomes on the server, for a method whose
    /// caller gets a proxy (Python's `method_to_typeid`); `None` (the default) for a plain
    /// value.
    fn method_typeid(method: &str) -> Option<&'static str> {
        let _ = method;
        None
    }
}

/// Makes a `T` for the server (the registered constructor: `T::default()`).
pub(crate) fn construct<T: Exposed + Default>() -> Box<dyn ExposedObject> {
    Box::new(T::default())
}

/// [`Exposed`] as an object (the server holds any registered type behind one pointer).
pub(crate) trait ExposedObject: Send {
    fn call(&mut self, method: &str, args: Vec<Value>) -> Result<Value, Fail>;
    fn typeid(&self) -> &'static str;
    fn method_typeid(&self, method: &str) -> Option<&'static str>;
}

impl<T: Exposed> ExposedObject for T {
    fn call(&mut self, method: &str, args: Vec<Value>) -> Result<Value, Fail> {
        self.call_method(method, args)
    }
    fn method_typeid(&self, method: &str) -> Option<&'static str> {
        T::method_typeid(method)
    }
    fn typeid(&self) -> &'static str {
        T::TYPEID
    }
}

impl std::fmt::Debug for dyn ExposedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} object>", self.typeid())
    }
}

/// Helpers of the code `exposed!` writes (not an API).
#[doc(hidden)]
pub mod __private {
    use super::*;

    /// The next argument of `method`, decoded as `T`.
    pub fn arg<T: DeserializeOwned>(
        args: &mut std::vec::IntoIter<Value>,
        method: &str,
        name: &str,
    ) -> Result<T, Fail> {
        let Some(v) = args.next() else {
            return Err((
                RemoteKind::TypeError,
                format!("{method}() missing argument {name:?}"),
            ));
        };
        rmpv::ext::from_value(v).map_err(|e| {
            (
                RemoteKind::TypeError,
                format!("{method}(): argument {name:?}: {e}"),
            )
        })
    }

    /// A method's result, encoded.
    pub fn ret<T: Serialize>(r: &T) -> Result<Value, Fail> {
        rmpv::ext::to_value(r).map_err(|e| (RemoteKind::TypeError, e.to_string()))
    }

    /// Encodes a proxy call's argument.
    pub fn to_value<T: Serialize>(x: &T) -> crate::Result<Value> {
        crate::manager::to_value(x)
    }

    /// Decodes a proxy call's result.
    pub fn from_value<T: DeserializeOwned>(v: Value) -> crate::Result<T> {
        crate::manager::from_value(v)
    }

    /// The "no such method" failure.
    pub fn no_method(typeid: &str, method: &str) -> Fail {
        (
            RemoteKind::AttributeError,
            format!("'{typeid}' object has no exposed method {method:?}"),
        )
    }
}

/// Exposes a type's methods to a manager's server and writes its typed proxy.
///
/// ```
/// use mp_manager::{exposed, Manager};
///
/// // Python's `MathsClass`, registered with `MyManager.register('Maths', MathsClass)`.
/// #[derive(Default)]
/// struct MathsClass;
///
/// impl MathsClass {
///     fn add(&mut self, x: i64, y: i64) -> i64 {
///         x + y
///     }
///     fn mul(&mut self, x: i64, y: i64) -> i64 {
///         x * y
///     }
/// }
///
/// exposed! {
///     impl MathsClass as MathsProxy {
///         fn add(&mut self, x: i64, y: i64) -> i64;
///         fn mul(&mut self, x: i64, y: i64) -> i64;
///     }
/// }
///
/// let manager = Manager::builder().register::<MathsClass>().start()?;
/// let maths: MathsProxy = manager.create()?;
/// assert_eq!(maths.add(4, 3)?, 7);
/// assert_eq!(maths.mul(7, 8)?, 56);
/// # Ok::<(), mp_manager::Error>(())
/// ```
///
/// Each listed method must exist on the type with that signature (`&mut self`, arguments and
/// result of serde types); the proxy gets the same methods taking `&self` and returning
/// `mp_manager::Result<R>`. A method listed as `-> R as SomeProxy` (Python's
/// `method_to_typeid`) makes its result a new object on the server, of `SomeProxy`'s type,
/// and its proxy method returns a `SomeProxy`: `fn history(&mut self) -> Vec<i64> as
/// ListProxy<i64>;`. The proxy is `Clone + Send + Sync` and passes to child processes
/// like the built-in ones.
#[macro_export]
macro_rules! exposed {
    (
        impl $ty:ident as $proxy:ident {
            $( fn $m:ident(&mut self $(, $a:ident : $at:ty)* $(,)?) -> $r:ty $(as $p:ty)?; )*
        }
    ) => {
        impl $crate::Exposed for $ty {
            const TYPEID: &'static str = stringify!($ty);
            fn call_method(
                &mut self,
                method: &str,
                args: ::std::vec::Vec<$crate::rmpv::Value>,
            ) -> ::std::result::Result<$crate::rmpv::Value, $crate::Fail> {
                #[allow(unused_mut, unused_variables)]
                let mut args = args.into_iter();
                match method {
                    $(
                        stringify!($m) => {
                            $(
                                let $a: $at = $crate::__private::arg(
                                    &mut args, stringify!($m), stringify!($a),
                                )?;
                            )*
                            let r: $r = <$ty>::$m(self $(, $a)*);
                            $crate::__private::ret(&r)
                        }
                    )*
                    other => ::std::result::Result::Err(
                        $crate::__private::no_method(stringify!($ty), other),
                    ),
                }
            }
            fn method_typeid(method: &str) -> ::std::option::Option<&'static str> {
                match method {
                    $( stringify!($m) => $crate::__exposed_typeid!($($p)?), )*
                    _ => ::std::option::Option::None,
                }
            }
        }

        #[doc = concat!("A proxy of a `", stringify!($ty), "` on a manager's server.")]
        #[derive(Clone, Debug)]
        pub struct $proxy($crate::Handle);

        impl $crate::__serde::Serialize for $proxy {
            fn serialize<S: $crate::__serde::Serializer>(
                &self,
                s: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                $crate::__serde::Serialize::serialize(&self.0, s)
            }
        }

        impl<'de> $crate::__serde::Deserialize<'de> for $proxy {
            fn deserialize<D: $crate::__serde::Deserializer<'de>>(
                d: D,
            ) -> ::std::result::Result<Self, D::Error> {
                <$crate::Handle as $crate::__serde::Deserialize<'de>>::deserialize(d).map($proxy)
            }
        }

        impl $crate::Proxy for $proxy {
            const TYPEID: &'static str = stringify!($ty);
            fn from_handle(handle: $crate::Handle) -> Self {
                $proxy(handle)
            }
        }

        impl $proxy {
            $(
                #[doc = concat!("Calls `", stringify!($m), "` on the server.")]
                pub fn $m(&self $(, $a: $at)*) -> $crate::Result<$crate::__exposed_ret!($r $(, $p)?)> {
                    let args = ::std::vec![$( $crate::__private::to_value(&$a)? ),*];
                    $crate::__exposed_call!(self.0, stringify!($m), args $(, $p)?)
                }
            )*
        }
    };
}

/// The server type id of an `exposed!` method's proxy result (`None` for a plain value).
#[doc(hidden)]
#[macro_export]
macro_rules! __exposed_typeid {
    () => {
        ::std::option::Option::None
    };
    ($p:ty) => {
        ::std::option::Option::Some(<$p as $crate::Proxy>::TYPEID)
    };
}

/// The return type of an `exposed!` proxy method.
#[doc(hidden)]
#[macro_export]
macro_rules! __exposed_ret {
    ($r:ty) => {
        $r
    };
    ($r:ty, $p:ty) => {
        $p
    };
}

/// The body of an `exposed!` proxy method.
#[doc(hidden)]
#[macro_export]
macro_rules! __exposed_call {
    ($h:expr, $m:expr, $args:expr) => {
        $crate::__private::from_value($h.call($m, $args)?)
    };
    ($h:expr, $m:expr, $args:expr, $p:ty) => {
        ::std::result::Result::Ok(<$p as $crate::Proxy>::from_handle(
            $h.call_proxy($m, $args)?,
        ))
    };
}
