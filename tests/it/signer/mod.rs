mod cli;
mod inspect;
mod js_interop;
mod python_interop;
