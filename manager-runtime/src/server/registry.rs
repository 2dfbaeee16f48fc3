//! Typeid registrations: how clients create objects (Python's `BaseManager.register`).

use std::fmt;
use std::sync::Arc;

use manager_core::{Codec, ObjectId, RemoteError, Shared};
use serde::de::DeserializeOwned;

use super::objects::{erase, ErasedObject};

type Constructor =
    Box<dyn Fn(&[u8], Codec) -> Result<Arc<dyn ErasedObject>, RemoteError> + Send + Sync>;

pub(crate) enum Creator {
    /// Each create builds a new object from the client's arguments.
    Constructor(Constructor),
    /// Every create returns a new reference to the same object, which keeps its state
    /// even while no client holds it.
    Instance {
        id: ObjectId,
        object: Arc<dyn ErasedObject>,
    },
}

/// How a server makes objects of one typeid: the counterpart of one
/// `BaseManager.register(typeid, callable, ..., create_method)` call.
///
/// ```
/// use manager_runtime::Registration;
/// # use manager_core::{CallOutcome, Codec, MethodInfo, Shared};
/// # struct Pair(i32, i32);
/// # impl Shared for Pair {
/// #     const NAME: &'static str = "Pair";
/// #     const METHODS: &'static [MethodInfo] = &[];
/// #     const HIDDEN: &'static [&'static str] = &[];
/// #     fn call_ref<'a>(&'a self, _: usize, _: &'a [u8], _: Codec) -> CallOutcome<'a> { unreachable!() }
/// #     fn call_mut<'a>(&'a mut self, _: usize, _: &'a [u8], _: Codec) -> CallOutcome<'a> { unreachable!() }
/// #     fn display(&self) -> Option<String> { None }
/// # }
/// // Python: manager.register('get_pair', Pair)
/// let by_constructor = Registration::constructor("get_pair", |(x, y): (i32, i32)| Pair(x, y));
/// // Python: manager.register('the_pair', callable=lambda: pair)
/// let one_instance = Registration::instance("the_pair", Pair(1, 2));
/// // Python: manager.register('Pair', Pair, create_method=False)
/// let not_creatable = Registration::constructor("Pair", |(x, y)| Pair(x, y)).create_method(false);
/// # let _ = (by_constructor, one_instance, not_creatable);
/// ```
pub struct Registration {
    pub(crate) typeid: String,
    pub(crate) kind: &'static str,
    pub(crate) creator: Creator,
    pub(crate) create_method: bool,
    pub(crate) python: Option<crate::python::PythonFace>,
    /// The type's exposed methods (`Shared::METHODS`), for descriptions.
    pub(crate) methods: &'static [manager_core::MethodInfo],
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let creator = match self.creator {
            Creator::Constructor(_) => "constructor",
            Creator::Instance { .. } => "instance",
        };
        f.debug_struct("Registration")
            .field("typeid", &self.typeid)
            .field("type", &self.kind)
            .field("creator", &creator)
            .field("create_method", &self.create_method)
            .field("python", &self.python.is_some())
            .finish()
    }
}

impl Registration {
    /// Each create calls `constructor` with the client's arguments (decoded as `A`, a tuple
    /// of the create call's arguments) and shares the new object.
    pub fn constructor<T, A, F>(typeid: impl Into<String>, constructor: F) -> Self
    where
        T: Shared,
        A: DeserializeOwned,
        F: Fn(A) -> T + Send + Sync + 'static,
    {
        Self::try_constructor(typeid, move |args| {
            Ok::<T, std::convert::Infallible>(constructor(args))
        })
    }

    /// Like [`constructor`](Self::constructor), for a constructor that can refuse its
    /// arguments: its `Err(e)` reaches the client as [`RemoteError::Method`] with
    /// `e.to_string()`, and no object is created.
    pub fn try_constructor<T, A, E, F>(typeid: impl Into<String>, constructor: F) -> Self
    where
        T: Shared,
        A: DeserializeOwned,
        E: std::fmt::Display,
        F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
    {
        let typeid = typeid.into();
        let name: Arc<str> = Arc::from(typeid.as_str());
        let construct = move |args: &[u8], codec: Codec| {
            let method = || format!("<create {name}>");
            let args: A = codec.decode(args).map_err(|e| RemoteError::BadArguments {
                method: "<create>".to_owned(),
                typeid: name.to_string(),
                reason: e.to_string(),
            })?;
            let value = super::panics::catch(&method(), || {
                constructor(args).map_err(|e| RemoteError::Method {
                    method: method(),
                    message: e.to_string(),
                })
            })?;
            Ok(erase(value))
        };
        Self {
            typeid,
            kind: T::NAME,
            creator: Creator::Constructor(Box::new(construct)),
            create_method: true,
            python: None,
            methods: T::METHODS,
        }
    }

    /// Every create returns a reference to this one object (Python's
    /// `callable=lambda: obj`): all clients see the same state. Create takes no arguments.
    pub fn instance<T: Shared>(typeid: impl Into<String>, value: T) -> Self {
        Self {
            typeid: typeid.into(),
            kind: T::NAME,
            creator: Creator::Instance {
                id: ObjectId(0),
                object: erase(value),
            },
            create_method: true,
            python: None,
            methods: T::METHODS,
        }
    }

    /// Whether clients may create objects of this typeid (Python's `create_method`;
    /// default `true`). With `false`, a client's create is refused with
    /// [`RemoteError::CreateNotAllowed`].
    pub fn create_method(mut self, allowed: bool) -> Self {
        self.create_method = allowed;
        self
    }

    /// Serve this typeid to CPython clients too, through `face` (see
    /// [`python`](crate::python)); it takes effect on a server with
    /// [`python_clients`](crate::ServerBuilder::python_clients) on.
    pub fn python(mut self, face: crate::python::PythonFace) -> Self {
        self.python = Some(face);
        self
    }

    /// The typeid.
    pub fn typeid(&self) -> &str {
        &self.typeid
    }
}

impl Registration {
    /// This registration, described (see `Client::describe`).
    pub(crate) fn describe(&self) -> manager_core::describe::TypeDescription {
        use manager_core::describe::{MethodDescription, Registered, TypeDescription};
        TypeDescription {
            typeid: self.typeid.clone(),
            name: self.kind.to_owned(),
            registered: match self.creator {
                Creator::Constructor(_) => Registered::Constructor,
                Creator::Instance { .. } => Registered::Instance,
            },
            create_method: self.create_method,
            methods: self.methods.iter().map(MethodDescription::from).collect(),
        }
    }
}
