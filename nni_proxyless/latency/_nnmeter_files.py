"""nn-Meter predictor packages: where one is (a given folder or ``.zip``, nn-Meter's data folder, a download), and
reading its folder (one legacy forest per kernel, :mod:`._legacy_forest`, and ``fusion_rules.json``).

nn-Meter 2.0 downloads ``<device>.zip`` from its GitHub release and unpacks it into ``<data folder>/predictor/``,
giving ``<data folder>/predictor/<device>/`` with one ``<kernel>.pkl`` per kernel and ``fusion_rules.json``; the
data folder is ``data_folder`` in ``~/.nn_meter/config/settings.yaml`` (default ``~/.nn_meter/data``). This module
only reads those places (it never writes nn-Meter's config), extracts zips safely into a cache folder, and
downloads only when asked to.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ._legacy_forest import LegacyForest, load_legacy_forest

__all__ = ['PredictorPackage', 'load_predictor_folder', 'locate_predictor', 'nnmeter_data_folder', 'extract_zip',
           'DEVICE_KERNELS', 'DOWNLOAD_URL']

_logger = logging.getLogger('nni.proxyless')

DOWNLOAD_URL = 'https://github.com/microsoft/nn-Meter/releases/download/v1.0-data/{device}.zip'
"""Where nn-Meter 2.0 downloads a device's package from (its ``configs/predictors.yaml``)."""

_CPU = ('conv-bn-relu', 'dwconv-bn-relu', 'fc', 'global-avgpool', 'hswish', 'relu', 'se', 'split', 'add', 'addrelu',
        'maxpool', 'avgpool', 'bn', 'bnrelu', 'channelshuffle', 'concat')
_GPU = ('conv-bn-relu', 'dwconv-bn-relu', 'hswish', 'relu', 'se', 'maxpool', 'avgpool', 'bn', 'bnrelu', 'concat')
_VPU = ('conv-bn-relu', 'dwconv-bn-relu', 'fc', 'hswish', 'relu', 'se', 'addrelu', 'maxpool', 'avgpool', 'bn', 'bnrelu',
        'channelshuffle')
DEVICE_KERNELS: dict[str, tuple[str, ...]] = {
    'cortexA76cpu_tflite21': _CPU, 'adreno640gpu_tflite21': _GPU, 'adreno630gpu_tflite21': _GPU,
    'myriadvpu_openvino2019r2': _VPU}
"""The kernel predictors each device's package holds (nn-Meter's ``configs/predictors.yaml``)."""


def nnmeter_data_folder() -> Path:
    """nn-Meter's data folder: ``data_folder`` of ``~/.nn_meter/config/settings.yaml``, else ``~/.nn_meter/data``."""
    default = Path(os.path.expanduser('~/.nn_meter/data'))
    settings = Path(os.path.expanduser('~/.nn_meter/config/settings.yaml'))
    try:
        text = settings.read_text(encoding='utf-8')
    except (OSError, UnicodeDecodeError):
        return default
    try:
        import yaml
        folder = (yaml.safe_load(text) or {}).get('data_folder')
    except Exception:  # an unreadable settings file: nn-Meter would fail on it too; use the default
        _logger.warning('Cannot read %s; assuming nn-Meter\'s default data folder %s.', settings, default)
        return default
    return Path(os.path.expanduser(str(folder))) if folder else default


def locate_predictor(device: str, predictor_dir: str | os.PathLike | None, *, allow_download: bool,
                     download_timeout: float, cache_dir: Path) -> Path:
    """The folder holding ``device``'s ``<kernel>.pkl`` files.

    Searched in order: ``predictor_dir`` (``<dir>/<device>/``, ``<dir>/predictor/<device>/``, ``<dir>`` itself,
    ``<dir>/<device>.zip``, or ``predictor_dir`` as a ``.zip``, extracted under ``cache_dir``), then nn-Meter's
    data folder, then a download when ``allow_download``.

    Raises:
        FileNotFoundError: nothing found (naming the device, every place searched and where to put the files), or
            a folder lacks some of the device's kernels (naming them).
        ValueError: a zip holds a path escaping its folder, or no predictor.
        ConnectionError: the download failed or stalled for ``download_timeout`` seconds.
    """
    searched: list[str] = []
    if predictor_dir is not None:
        found = _search_given(Path(predictor_dir).expanduser(), device, cache_dir, searched)
        if found is not None:
            return found
    root = nnmeter_data_folder() / 'predictor'
    found = _complete_folder(root / device, device, searched)
    if found is not None:
        if predictor_dir is not None:
            _logger.warning('No nn-Meter predictor for %s in predictor_dir=%s; using nn-Meter\'s %s.', device,
                            predictor_dir, found)
        return found
    if allow_download:
        return _download(device, root, download_timeout)
    raise FileNotFoundError(_absent_message(device, searched, root))


def _search_given(path: Path, device: str, cache_dir: Path, searched: list[str]) -> Path | None:
    if path.is_file():
        if path.suffix.lower() != '.zip':
            raise ValueError(f'predictor_dir={str(path)!r} is a file but not a .zip; pass the folder holding '
                             f'{device}/ or the {device}.zip that nn-Meter downloads.')
        return _device_folder(extract_zip(path, cache_dir), device, str(path))
    if not path.is_dir():
        searched.append(f'{path} (does not exist)')
        return None
    for folder in (path / device, path / 'predictor' / device, path):
        if folder == path and path.name in DEVICE_KERNELS and path.name != device:
            continue  # another device's folder
        found = _complete_folder(folder, device, searched)
        if found is not None:
            return found
    archive = path / f'{device}.zip'
    if archive.is_file():
        return _device_folder(extract_zip(archive, cache_dir), device, str(archive))
    searched.append(str(archive))
    return None


def _complete_folder(folder: Path, device: str, searched: list[str]) -> Path | None:
    """``folder`` if it holds ``.pkl`` files; None (and noted in ``searched``) if none."""
    if not folder.is_dir() or not any(folder.glob('*.pkl')):
        searched.append(str(folder))
        return None
    missing = [k for k in DEVICE_KERNELS[device] if not (folder / f'{k}.pkl').is_file()]
    if missing:
        raise FileNotFoundError(f'The nn-Meter predictor folder {folder} for {device} is incomplete: no '
                                f'{", ".join(k + ".pkl" for k in missing)}. Unzip {device}.zip again '
                                f'({DOWNLOAD_URL.format(device=device)}).')
    return folder


def _device_folder(extracted: Path, device: str, origin: str) -> Path:
    searched: list[str] = []
    for folder in (extracted / device, extracted):
        found = _complete_folder(folder, device, searched)
        if found is not None:
            return found
    raise ValueError(f'{origin} holds no nn-Meter predictor for {device} (no {device}/<kernel>.pkl files).')


def _absent_message(device: str, searched: list[str], root: Path) -> str:
    return (f'No nn-Meter predictor for {device!r} found. Searched: {"; ".join(searched)}. '
            f'Get {device}.zip ({DOWNLOAD_URL.format(device=device)}), then either unzip it into {root}/ so that '
            f'{root / device}/ holds its <kernel>.pkl files and fusion_rules.json (nn-Meter\'s data folder), or '
            f'pass predictor_dir=<the folder holding {device}/, or the .zip itself> (in Proxyless: '
            f"predictor_options={{'predictor_dir': ...}}). Or pass allow_download=True to download it now.")


def extract_zip(archive: Path, cache_dir: Path) -> Path:
    """Extract ``archive`` once into ``cache_dir/<name>-<key>/`` (key: path, size, mtime) and return that folder.

    Raises:
        ValueError: a member is absolute, has a ``..`` part or is a symbolic link (nothing is extracted).
        zipfile.BadZipFile: not a zip file.
    """
    info = archive.stat()
    key = hashlib.sha256(f'{archive.resolve()}|{info.st_size}|{info.st_mtime_ns}'.encode()).hexdigest()[:12]
    target = cache_dir / f'{archive.stem}-{key}'
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix='.extracting-', dir=cache_dir))
    try:
        _extract_safely(archive, staging)
        try:
            staging.rename(target)
        except OSError:  # extracted meanwhile by another process
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _logger.info('Extracted %s into %s.', archive, target)
    return target


def _extract_safely(archive: Path, folder: Path) -> None:
    """Extract every member inside ``folder``, refusing any that would land elsewhere (checked before writing)."""
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        for member in members:
            parts = PurePosixPath(member.filename.replace('\\', '/')).parts
            escapes = (not parts or member.filename.startswith(('/', '\\')) or '..' in parts
                       or ':' in parts[0] or stat.S_ISLNK(member.external_attr >> 16))
            if escapes or not (folder / Path(*parts)).resolve().is_relative_to(folder.resolve()):
                raise ValueError(f'{archive}: refusing to extract {member.filename!r}: it would be written outside '
                                 f'the extraction folder (absolute path, "..", or a link).')
        for member in members:
            destination = folder.joinpath(*PurePosixPath(member.filename.replace('\\', '/')).parts)
            if member.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zipped.open(member) as source, destination.open('wb') as out:
                shutil.copyfileobj(source, out, 1 << 20)


def _download(device: str, root: Path, timeout: float) -> Path:
    """Download ``device``'s zip into nn-Meter's ``<data folder>/predictor/`` and unpack it there, as nn-Meter does."""
    url = DOWNLOAD_URL.format(device=device)
    if (root / device).exists():
        raise FileNotFoundError(f'{root / device} exists but holds no <kernel>.pkl files; remove it or put '
                                f'{device}\'s predictor files there, then try again.')
    root.mkdir(parents=True, exist_ok=True)
    part = root / f'.{device}.zip.part'
    _logger.warning('Downloading the nn-Meter predictor %s from %s into %s (allow_download=True).', device, url, root)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, part.open('wb') as out:
            shutil.copyfileobj(response, out, 1 << 20)
        unpacked = extract_zip(part, root / '.extracted')
        shutil.move(str(_device_folder(unpacked, device, url)), str(root / device))
        shutil.rmtree(root / '.extracted', ignore_errors=True)
    except (OSError, ValueError, zipfile.BadZipFile) as error:  # URLError and timeouts are OSErrors
        raise ConnectionError(
            f'Downloading the nn-Meter predictor {device} from {url} failed ({type(error).__name__}: {error}). '
            f'Download {device}.zip elsewhere and pass predictor_dir=<its path>, or unzip it into {root}/.') from error
    finally:
        part.unlink(missing_ok=True)
    return root / device


@dataclass(frozen=True)
class PredictorPackage:
    """The contents of one nn-Meter predictor folder.

    Attributes:
        kernels: Kernel name (file stem, e.g. 'conv-bn-relu') -> its forest.
        fusion_rules: Parsed ``fusion_rules.json`` (rule name -> {'obey': ...}), or {} if the file is absent.
    """

    kernels: dict[str, LegacyForest]
    fusion_rules: dict[str, Any]


def load_predictor_folder(folder: str | Path) -> PredictorPackage:
    """Read every ``<kernel>.pkl`` of an nn-Meter predictor folder, e.g. ``.../cortexA76cpu_tflite21/``.

    Args:
        folder: The folder holding the ``.pkl`` files and, optionally, ``fusion_rules.json``.

    Returns:
        The kernels' forests (keyed by file stem, sorted) and the fusion rules.

    Raises:
        FileNotFoundError: If the folder does not exist or holds no ``.pkl`` file.
        NotADirectoryError: If ``folder`` is a file.
        pickle.UnpicklingError, ValueError: As ``load_legacy_forest``, naming the bad file.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f'nn-Meter predictor folder not found: {folder}')
    if not folder.is_dir():
        raise NotADirectoryError(f'nn-Meter predictor folder is not a directory: {folder}')
    files = sorted(folder.glob('*.pkl'))
    if not files:
        raise FileNotFoundError(f'no <kernel>.pkl predictor files in {folder}')
    kernels = {file.stem: load_legacy_forest(file) for file in files}
    rules_file = folder / 'fusion_rules.json'
    rules: Any = {}
    if rules_file.exists():
        try:
            rules = json.loads(rules_file.read_text(encoding='utf-8'))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f'{rules_file}: not valid JSON: {exc}') from exc
        if not isinstance(rules, dict):
            raise ValueError(f'{rules_file}: expected a JSON object, got {type(rules).__name__}')
    return PredictorPackage(kernels, rules)
