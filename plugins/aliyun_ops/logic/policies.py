"""The ``ops:policy`` values the project's DAGs write on the images they make: the one list of them.

A DAG that tags images names its policy from here, and ``ecs_image_retention`` prunes every policy of
``PROJECT_POLICIES`` by default, so a new policy added here is pruned by the nightly run without a second edit.
``ANY`` in a retention run's policy set means any image we manage (``ops:managed-by``), with or without a policy.
"""

from __future__ import annotations

BACKUP_POLICY = "ecs-cross-region-backup"          # ecs_cross_region_backup: nightly images and their DR copies
SPOT_CYCLE_POLICY = "ecs-spot-image-cycle"         # ecs_spot_image_cycle: one image per spot instance per day
RESTORE_UNDO_POLICY = "ecs-restore-undo"           # ecs_restore_system_disk: an image of the undo snapshot
GOLDEN_POLICY = "ecs-golden-image"                 # ecs_update_image: golden images and their published copies
PROJECT_POLICIES: tuple[str, ...] = (BACKUP_POLICY, SPOT_CYCLE_POLICY, RESTORE_UNDO_POLICY, GOLDEN_POLICY)
ANY = "any"
