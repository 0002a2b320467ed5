import numpy as np
import pytest

from engine.training.recipes import (
    KJV_VALIDATION_BOOKS,
    RECIPES,
    digits_data,
    get_recipe,
    kjv_data,
    kjv_verses,
)


def test_prime_and_mdm_recipes_differ_only_in_ell():
    for family in ("digits", "kjv"):
        prime, mdm = RECIPES[f"{family}-prime"], RECIPES[f"{family}-mdm"]
        assert prime.model.ell > 1 and mdm.model.ell == 1
        assert prime.model.replace(ell=1) == mdm.model
        assert prime.train == mdm.train
    with pytest.raises(ValueError, match="known recipes: digits-prime"):
        get_recipe("cifar")


def test_digits_split_is_fixed_and_disjoint():
    data = digits_data()
    assert data.tokens.shape == (1797, 64) and int(data.tokens.max()) == 16
    assert len(data.val_index) == 297 and len(data.train_index) == 1500
    assert not set(data.train_index) & set(data.val_index)
    assert np.array_equal(digits_data().val_index, data.val_index)


def test_kjv_holds_out_whole_books():
    verses = kjv_verses()
    assert len(verses) == 31102
    assert verses[0] == ("Ge", "In the beginning God created the heaven and the earth.")
    data = kjv_data(128)
    val_text = b"".join(bytes(data.tokens[i]) for i in data.val_index)
    train_text = b"".join(bytes(data.tokens[i]) for i in data.train_index)
    ruth_first = b"Now it came to pass in the days when the judges ruled"
    assert ruth_first in val_text and ruth_first not in train_text
    assert b"In the beginning God created" in train_text
    assert set(KJV_VALIDATION_BOOKS) <= {book for book, _ in verses}
