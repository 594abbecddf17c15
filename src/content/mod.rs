//! The verified streaming payload cache behind `/Content/XX/<SHA1>.<ext>`.
