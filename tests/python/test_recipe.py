"""mxkit.recipe: the recipes of `mx train --recipe` as plain data, each role None, "bf16" or the
keywords of fake_quantize for its cast."""
import json
import os
import tempfile
import unittest

import numpy as np

import mxkit


class Recipe(unittest.TestCase):
    def test_presets_give_every_role(self):
        self.assertIn("mxfp6", mxkit.recipe_presets)
        roles = ("weight_fwd", "act_fwd", "grad_out_dx", "weight_dx", "grad_out_dw", "act_dw")
        fp32, bf16, fp6 = (mxkit.recipe(n) for n in ("fp32", "bf16", "mxfp6"))
        for role in roles:
            self.assertIsNone(fp32[role], role)
            self.assertEqual(bf16[role], "bf16", role)
            self.assertEqual(fp6[role]["format"], "mxfp6_e3m2", role)
            self.assertEqual(fp6[role]["block"], 32, role)
        # The keywords are fake_quantize's own.
        x = np.linspace(-3, 3, 64, dtype=np.float32).reshape(2, 32)
        np.testing.assert_array_equal(mxkit.fake_quantize(x, **fp6["act_fwd"]),
                                      mxkit.fake_quantize(x, "mxfp6_e3m2"))

    def test_json_text_and_files_read_as_mx_train_reads_them(self):
        text = json.dumps({"name": "w4", "weight_fwd": {"format": "mxfp4_e2m1"}})
        self.assertEqual(mxkit.recipe(text)["weight_fwd"]["format"], "mxfp4_e2m1")
        self.assertIsNone(mxkit.recipe(text)["act_fwd"])
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "r.json")
            with open(path, "w") as f:
                f.write(text)
            self.assertEqual(mxkit.recipe(path)["name"], "w4")

    def test_unknown_names_and_bad_json_are_one_line_value_errors(self):
        for bad in ("nope", "{\"weight_fwd\": 3}"):
            with self.assertRaises(ValueError) as e:
                mxkit.recipe(bad)
            self.assertNotIn("\n", str(e.exception))

    def test_the_bfloat16_exceptions_of_a_recipe_are_read(self):
        text = json.dumps({"default": "mxfp6_e3m2", "bf16_attention": True})
        r = mxkit.recipe(text)
        self.assertTrue(r["bf16_attention"])
        self.assertFalse(r["bf16_classifier"])
        self.assertFalse(mxkit.recipe("mxfp6")["bf16_attention"])

    def test_a_rotated_recipe_is_refused_not_read_as_unrotated(self):
        text = json.dumps({"name": "w4r", "weight_fwd": {"format": "mxfp4_e2m1",
                                                         "rotate": "hadamard"}})
        with self.assertRaises(ValueError) as e:
            mxkit.recipe(text)
        self.assertIn("rotates its blocks", str(e.exception))


if __name__ == "__main__":
    unittest.main()
