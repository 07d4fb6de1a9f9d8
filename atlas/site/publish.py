"""Publishing a built site to a gh-pages branch: one commit, no history, force-pushed.

The commit is made in a throwaway repository whose work tree is the site folder itself, so
nothing is copied and the project's own repository is never touched; only the push goes to
the remote. Publishing to the project's origin requires a clean project, so that the
published site can be traced to a commit.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from atlas.errors import AtlasError
from atlas.site.build import MARKER


@dataclass(frozen=True)
class Published:
    remote: str
    branch: str
    commit: str
    files: int
    source: str  # the project commit the site was built from, "" when unknown


def _git(*args: str, cwd: Path | None = None, env_dir: Path | None = None) -> str:
    cmd = ["git", "-c", "core.autocrlf=false", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    if env_dir is not None:
        cmd += [f"--git-dir={env_dir}"]
    try:
        done = subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise AtlasError("git is not installed: install git to publish") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise AtlasError(f"git {args[0]} failed: {detail[-1] if detail else 'exit ' + str(done.returncode)}")
    return done.stdout.strip()


def _identity(project: Path) -> list[str]:
    """The project's configured author, or a neutral one: publishing must not fail on a bare CI machine."""
    values = {"user.name": "atlas publish", "user.email": "atlas@localhost"}
    for key in values:
        try:
            values[key] = _git("config", key, cwd=project) or values[key]
        except AtlasError:
            pass
    return [arg for key, value in values.items() for arg in ("-c", f"{key}={value}")]


def _origin(project: Path) -> str:
    try:
        return _git("remote", "get-url", "origin", cwd=project)
    except AtlasError as exc:
        raise AtlasError(f"{project} has no git remote 'origin': pass --remote URL_OR_PATH") from exc


def _check_clean(project: Path) -> str:
    """The project's HEAD commit; raises when tracked files have uncommitted changes."""
    changed = _git("status", "--porcelain", "--untracked-files=no", cwd=project).splitlines()
    if changed:
        raise AtlasError(
            f"the project has uncommitted changes in {len(changed)} tracked file(s), "
            f"e.g. {changed[0].split(maxsplit=1)[-1]}; "
            "commit or stash them so that the published site matches a commit"
        )
    return _git("rev-parse", "HEAD", cwd=project)


def publish(site: Path, remote: str | None = None, *, branch: str = "gh-pages", project: Path = Path("."),
            message: str | None = None) -> Published:
    """Push the site in `site` to `remote` (default: the project's origin) as the only commit on `branch`."""
    site = Path(site)
    if not (site / "index.html").is_file() or not (site / MARKER).is_file():
        raise AtlasError(
            f"{site} holds no built site (index.html, {MARKER}): run `atlas build` first or pass --out DIR")
    if remote is None or remote == "origin":
        remote_url = _origin(project)
        source = _check_clean(project)
    else:
        local = Path(remote)
        remote_url = str(local.resolve()) if local.exists() else remote
        try:
            source = _git("rev-parse", "HEAD", cwd=project)
        except AtlasError:
            source = ""
    with tempfile.TemporaryDirectory(prefix="atlas-publish-") as tmp:
        git_dir = Path(tmp) / "repo.git"
        _git("init", "--quiet", "--bare", str(git_dir))
        work = ["--work-tree", str(site.resolve())]
        _git(*work, "add", "--all", "--force", ".", env_dir=git_dir)
        if not (site / ".nojekyll").exists():  # GitHub Pages must not run Jekyll on the site
            empty = _git("hash-object", "-w", "--stdin", env_dir=git_dir)
            _git("update-index", "--add", "--cacheinfo", f"100644,{empty},.nojekyll", env_dir=git_dir)
        files = len(_git("ls-files", env_dir=git_dir).splitlines())
        text = message or f"Publish atlas site{' built from ' + source[:12] if source else ''}"
        identity = _identity(project)
        tree = _git("write-tree", env_dir=git_dir)
        commit = _git(*identity, "commit-tree", tree, "-m", text, env_dir=git_dir)
        _git("push", "--quiet", "--force", remote_url, f"{commit}:refs/heads/{branch}", env_dir=git_dir)
    return Published(remote_url, branch, commit, files, source)
