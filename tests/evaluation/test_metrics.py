import math

import torch

from semflow.evaluation.metrics import ConfusionMatrix


def test_scores_by_hand():
    label = torch.tensor([[0, 0, 1, 1], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 0, 1]])
    cm = ConfusionMatrix(4, ignore_index=255)
    cm.update(pred, label)
    s = cm.scores()
    # class 0: tp 1, union 3 (label 2 + pred 2 - 1); class 1: tp 2, union 3; class 2: tp 1, union 2; 3: absent
    assert s.per_class_iou[:3] == [1 / 3, 2 / 3, 1 / 2] and s.per_class_iou[3] is None
    assert math.isclose(s.miou, (1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert math.isclose(s.pixel_accuracy, 4 / 6)


def test_accumulates_pixels_not_image_means():
    cm = ConfusionMatrix(2)
    cm.update(torch.zeros(1, 10), torch.zeros(1, 10, dtype=torch.long))  # big image, all right
    cm.update(torch.tensor([[1]]), torch.tensor([[0]]))  # one pixel, wrong
    s = cm.scores()
    assert math.isclose(s.per_class_iou[0], 10 / 11) and s.per_class_iou[1] == 0.0
    other = ConfusionMatrix(2)
    other.update(torch.tensor([[1]]), torch.tensor([[1]]))
    cm.merge(other)
    assert cm.matrix.tolist() == [[10, 1], [0, 1]]
