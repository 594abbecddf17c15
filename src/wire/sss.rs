//! MS-WSUSSS operations (in progress).
