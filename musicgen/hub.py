"""Models by Hugging Face hub id ("facebook/musicgen-small") or audiocraft's short name ("small"), read from the
local Hugging Face cache only: nothing here touches the network.

    folder = checkpoint_folder("facebook/musicgen-small")   # .../models--facebook--musicgen-small/snapshots/<commit>

The cache is where huggingface_hub puts downloads (`hf download facebook/musicgen-small`): HF_HUB_CACHE, else
HF_HOME/hub, else ~/.cache/huggingface/hub. huggingface_hub reads those variables once, when it is imported, so the
folder is worked out here from the environment at each call and handed to it.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

# audiocraft's names for its MusicGen checkpoints (audiocraft/models/musicgen.py, _HF_MODEL_CHECKPOINTS_MAP)
SHORT_NAMES = {
    "small": "facebook/musicgen-small",
    "medium": "facebook/musicgen-medium",
    "large": "facebook/musicgen-large",
    "melody": "facebook/musicgen-melody",
    "style": "facebook/musicgen-style",
}
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")


def checkpoint_folder(path: str | Path) -> Path:
    """The checkpoint directory `path` names: path itself when it is a directory; else, for a string that is a hub
    id ("owner/name") or a short name ("small"), that model's snapshot in the local Hugging Face cache, or
    FileNotFoundError saying how to download it. Any other path comes back as it is, for the caller to refuse.
    """
    folder = Path(path)
    if folder.is_dir() or not isinstance(path, str):
        return folder
    repo_id = SHORT_NAMES.get(path, path)
    if not HUB_ID.fullmatch(repo_id):
        return folder
    cache = hub_cache()
    try:
        return Path(snapshot_download(repo_id, cache_dir=cache, local_files_only=True))
    except LocalEntryNotFoundError as error:
        raise FileNotFoundError(
            f"no checkpoint directory at {path}, and no complete snapshot of {repo_id} in the Hugging Face cache at "
            f"{cache}; nothing is downloaded here: download it first with `hf download {repo_id} --exclude '*.bin'` "
            f"(`huggingface-cli download` with huggingface_hub older than 1.0)") from error


def hub_cache() -> Path:
    """The Hugging Face hub cache folder that the environment names now (see the module docstring)."""
    cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if not cache:
        home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
        cache = os.path.join(home, "hub")
    return Path(os.path.expandvars(os.path.expanduser(cache)))
