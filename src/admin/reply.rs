//! What an admin command prints, sent back over the admin socket.

use serde::{Deserialize, Serialize};

/// What a command prints.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    pub stdout: String,
    pub stderr: String,
}
