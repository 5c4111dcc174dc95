//! Black-box tests of the local stack.
