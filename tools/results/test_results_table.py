#!/usr/bin/env python3
"""Checks of results_table.py's 84 px rows and goal line on run folders written here, with the
numbers worked out by hand in each test (python3 -m unittest discover -s tools/results)."""
import json
import os
import shutil
import tempfile
import unittest

import results_table as rt


def write(folder, name, value):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "w") as f:
        if name.endswith(".jsonl"):
            f.write("".join(json.dumps(row) + "\n" for row in value))
        else:
            json.dump(value, f)


class LargeTableTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.root)

    def run_folder(self, name):
        return os.path.join(self.root, name)

    def pretraining(self, name, cpu, stopped_early=False):
        write(self.run_folder(name), "result.json",
              {"stoppedEarly": stopped_early, "totalCPUSeconds": cpu, "totalSeconds": 2 * cpu, "epochs": 10})
        write(self.run_folder(name), "knn.json", {"top1": 0.8})
        write(self.run_folder(name), "linprobe.json", {"top1": 0.85})

    def finetune(self, name, top1):
        # The result's last epoch differs from eval.json: the table must read eval.json.
        write(self.run_folder(name), "result.json", {"stoppedEarly": False, "top1": top1 - 0.1})
        write(self.run_folder(name), "eval.json", {"top1": top1})

    def goal(self):
        return rt.goal_line(self.root)

    def test_met_states_share_and_gap(self):
        self.pretraining("mae-84px", 20000)
        self.finetune("mae-84px-ft", 0.9100)
        self.pretraining("lomar-84px-half", 9400)   # 9,400 / 20,000 = 47.0%
        self.finetune("lomar-84px-half-ft", 0.9068)  # 90.68 − 91.00 = −0.32 points
        line = self.goal()
        self.assertTrue(line.startswith(rt.GOAL_PREFIX))
        self.assertIn("LoMaR (T/2) 47.0% of MAE's pretraining CPU time, fine-tune top-1 -0.32 points against MAE's: **met**.", line)
        self.assertNotIn("LoMaR (T) ", line)

    def test_bounds_are_inclusive(self):
        self.pretraining("mae-84px", 20000)
        self.finetune("mae-84px-ft", 0.9100)
        self.pretraining("lomar-84px-half", 10000)  # exactly half
        self.finetune("lomar-84px-half-ft", 0.9050)  # exactly 0.5 points below (0.905 − 0.91 is −0.5000000000000004 in binary)
        self.assertIn("50.0% of MAE's pretraining CPU time, fine-tune top-1 -0.50 points against MAE's: **met**.", self.goal())

    def test_missed_on_cpu_share(self):
        self.pretraining("mae-84px", 20000)
        self.finetune("mae-84px-ft", 0.9100)
        self.pretraining("lomar-84px-half", 10400)  # 52.0%
        self.finetune("lomar-84px-half-ft", 0.9130)
        self.assertIn("52.0% of MAE's pretraining CPU time, fine-tune top-1 +0.30 points against MAE's: "
                      "**missed: more than 50% of MAE's CPU time**.", self.goal())

    def test_missed_on_top1(self):
        self.pretraining("mae-84px", 20000)
        self.finetune("mae-84px-ft", 0.9100)
        self.pretraining("lomar-84px-half", 9000)
        self.finetune("lomar-84px-half-ft", 0.9049)  # −0.51 points
        self.assertIn("45.0% of MAE's pretraining CPU time, fine-tune top-1 -0.51 points against MAE's: "
                      "**missed: more than 0.5 points below MAE's top-1**.", self.goal())

    def test_equal_time_run_added_once_finished(self):
        self.pretraining("mae-84px", 20000)
        self.finetune("mae-84px-ft", 0.9100)
        self.pretraining("lomar-84px-half", 9400)
        self.finetune("lomar-84px-half-ft", 0.9068)
        self.pretraining("lomar-84px-equal", 19600)
        self.assertNotIn("LoMaR (T) ", self.goal())  # its fine-tune has not run
        self.finetune("lomar-84px-equal-ft", 0.9112)
        self.assertIn("At MAE's time, LoMaR (T) 98.0% of MAE's pretraining CPU time, fine-tune top-1 +0.12 points against MAE's.",
                      self.goal())

    def test_waiting_names_unfinished_runs(self):
        self.pretraining("mae-84px", 20000)
        self.finetune("mae-84px-ft", 0.9100)
        self.pretraining("lomar-84px-half", 3000, stopped_early=True)  # interrupted: not a result
        self.assertTrue(self.goal().endswith("waiting for lomar-84px-half, lomar-84px-half-ft."))

    def test_previous_line_kept_without_run_folders(self):
        previous = rt.GOAL_PREFIX + " (…): LoMaR (T/2) 47.0% …: **met**."
        self.assertEqual(rt.goal_line(self.root, previous), previous)
        self.pretraining("mae-84px", 20000)  # a folder here: this machine's runs speak, not the document
        self.assertIn("waiting for mae-84px-ft", rt.goal_line(self.root, previous))

    def test_update_round_trips_goal_line(self):
        self.pretraining("mae-84px", 20000)
        self.finetune("mae-84px-ft", 0.9100)
        self.pretraining("lomar-84px-half", 9400)
        self.finetune("lomar-84px-half-ft", 0.9068)
        document = os.path.join(self.root, "RESULTS.md")
        with open(document, "w") as f:
            f.write(f"intro\n{rt.BEGIN}\nold\n{rt.END}\noutro\n")
        rt.update(document, rt.table(self.root, rt.previous_rows(document), rt.previous_goal_line(document)))
        line = rt.previous_goal_line(document)
        self.assertIn("**met**", line)
        # Another machine without the folders rewrites the table and keeps the verdict and the cells.
        empty = tempfile.mkdtemp()
        rt.update(document, rt.table(empty, rt.previous_rows(document), rt.previous_goal_line(document)))
        os.rmdir(empty)
        self.assertEqual(rt.previous_goal_line(document), line)
        with open(document) as f:
            content = f.read()
        self.assertIn("| LoMaR at 84 px, half of MAE's time (T/2) | 4 | 2.61 CPU h (47% of MAE's), wall 5.22 h | 80.00% | 85.00% | 90.68% |",
                      content)

    def test_a_kept_cell_is_a_measurement_not_a_runs_progress(self):
        # Without run folders a cell keeps what the document had, but only a measured value:
        # "in progress" or "…" was true only while a folder said so.
        head = ["pretraining", "k-NN", "probe", "fine-tune"]
        previous = {"MAE": {"pretraining": "MAE", "k-NN": "in progress (0 of 4 epochs)", "probe": "…", "fine-tune": "47.57%"}}
        self.assertEqual(rt.row_line(head, ["MAE", "queued", "queued", "queued"], previous), "| MAE | queued | queued | 47.57% |")

    def test_epochs_cell_from_the_runs_recipe(self):
        def epochs_cells():
            return [line.split(" | ")[1] for line in rt.large_table(self.root).splitlines()[2:]]
        self.assertEqual(epochs_cells(), ["4", "4", "10", "–"])  # planned: no folders yet
        write(self.run_folder("lomar-84px-half"), "recipe.json", {"epochs": 3})
        self.assertEqual(epochs_cells(), ["4", "3", "10", "–"])

    def test_progress_counts_whole_epochs(self):
        # Swift writes a step's epoch 2.0 as 2: still two epochs done.
        write(self.run_folder("mae-84px"), "recipe.json", {"epochs": 10})
        write(self.run_folder("mae-84px"), "metrics.jsonl", [{"epoch": 1.5, "step": 3}, {"epoch": 2, "step": 4}])
        self.assertEqual(rt.progress(self.run_folder("mae-84px")), "in progress (2 of 10 epochs)")


if __name__ == "__main__":
    unittest.main()
