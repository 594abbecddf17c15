//! Client-facing HTTP listeners (8530 plain, 8531 TLS) and request routing.
