"""Beat jobs of the mesh (thin: each calls a service or pokes meshd)."""

from __future__ import annotations

from celery import shared_task

from mesh import services


@shared_task(name="mesh.tasks.gossip_round", ignore_result=True)
def gossip_round() -> None:
    """Anti-entropy: sign new local blacklist entries, then have meshd sync every link."""
    services.blacklist_local_sign()
    services.mesh_poke(command="gossip")


@shared_task(name="mesh.tasks.membership_sweep", ignore_result=True)
def membership_sweep() -> None:
    services.membership_sweep()


@shared_task(name="mesh.tasks.prune", ignore_result=True)
def prune() -> None:
    services.peers_prune()


@shared_task(name="mesh.tasks.mdns_refresh", ignore_result=True)
def mdns_refresh() -> None:
    services.mesh_poke(command="mdns_refresh")


@shared_task(name="mesh.tasks.connectivity_check", ignore_result=True)
def connectivity_check() -> None:
    services.connectivity_check()
