"""openai-whisper reports progress only through a tqdm bar its transcribe module makes; the
adapter swaps that bar. This fails loudly when a whisper release stops making it."""

import importlib
import inspect

from workers.engines.whisper_adapter import whisper_progress


def test_whisper_still_makes_its_progress_bar_through_its_own_tqdm():
    module = importlib.import_module("whisper.transcribe")
    assert hasattr(module, "tqdm") and callable(module.tqdm.tqdm)
    source = inspect.getsource(module.transcribe)
    assert "tqdm.tqdm(" in source and "total=" in source and ".update(" in source


def test_the_swapped_bar_forwards_seconds_done_and_is_put_back():
    module = importlib.import_module("whisper.transcribe")
    original = module.tqdm
    seen = []
    with whisper_progress(seen.append, 60.0):
        with module.tqdm.tqdm(total=3000, unit="frames") as bar:
            bar.update(1500)
    assert seen == [30.0]
    assert module.tqdm is original
