"""The model card: classes with colours, the training configuration, metrics from the run folder."""

import json

from semflow.app.card import card_html, model_card


def test_card_without_side_files_shows_the_model_configuration(pipe, semflow_dir):
    card = model_card(pipe, semflow_dir)
    assert [name for _, name, _ in card.classes] == list(pipe.dataset.class_names)
    assert card.metrics is None and card.config["model"]["size"] == [16, 16]
    page = card_html(card)
    assert "No metrics file" in page and "background" in page


def test_card_reads_train_config_and_the_run_folders_metrics(pipe, tmp_path):
    run, model = tmp_path / "run", tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (model / "train_config.json").write_text(json.dumps({"train": {"steps": 123, "data": "<b>shapes</b>"}}))
    (run / "metrics.json").write_text(json.dumps({"data": "shapes", "miou": {"1": 0.75, "25": 0.5},
                                                  "pixel_accuracy": {"1": 0.9, "25": 0.8}}))
    card = model_card(pipe, model)
    assert card.config["train"]["steps"] == 123 and card.metrics_source == run / "metrics.json"
    page = card_html(card)
    assert "<td>25</td><td>0.500</td><td>0.800</td>" in page
    assert "&lt;b&gt;shapes&lt;/b&gt;" in page and "<b>shapes</b>" not in page  # file contents are escaped


def test_a_corrupt_metrics_file_leaves_the_card_without_metrics(pipe, tmp_path):
    (tmp_path / "metrics.json").write_text("{not json")
    assert model_card(pipe, tmp_path).metrics is None
