//! The metadata store over sled: updates, revisions, groups, approvals, anchors, computers. The only module that names sled.
