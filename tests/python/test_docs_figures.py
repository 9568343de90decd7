"""docs/figures/make_figures.py still runs against the current package and writes the four PNGs that
docs/positional.md shows (so the committed figures can always be regenerated)."""
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class TestDocsFigures(unittest.TestCase):
    def test_make_figures(self):
        with tempfile.TemporaryDirectory() as d:
            subprocess.run([sys.executable, os.path.join(ROOT, "docs", "figures", "make_figures.py"), "--out", d],
                           check=True, stdout=subprocess.DEVNULL)
            md = open(os.path.join(ROOT, "docs", "positional.md"), encoding="utf-8").read()
            for name in ("sinusoidal", "rope", "alibi", "t5"):
                with open(os.path.join(d, name + ".png"), "rb") as f:
                    head = f.read(8)
                self.assertEqual(head, b"\x89PNG\r\n\x1a\n")
                self.assertIn("figures/%s.png" % name, md)
                self.assertTrue(os.path.isfile(os.path.join(ROOT, "docs", "figures", name + ".png")))


if __name__ == "__main__":
    unittest.main()
