"""Graph builder: exact edge counts on hand-checked crystals, neighbour-list contract, cache."""

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from tests.conftest import bcc_conventional, fcc_primitive, rocksalt
from zoo import keys
from zoo.graphs import GraphSettings, build_graph, build_store, neighbor_arrays


def degree(arrays, n):
    return np.bincount(arrays["dst"], minlength=n)


def test_fcc_has_twelve_equal_bonds():
    arrays = neighbor_arrays(fcc_primitive(3.61), GraphSettings())
    assert len(arrays["src"]) == 12
    assert np.allclose(arrays["distance"], 3.61 / np.sqrt(2), atol=1e-5)


def test_bcc_cuts_the_second_shell_at_twelve():
    a = 2.87
    arrays = neighbor_arrays(bcc_conventional(a), GraphSettings())
    assert len(arrays["src"]) == 24
    for atom in range(2):
        d = arrays["distance"][arrays["dst"] == atom]
        assert np.allclose(d[:8], a * np.sqrt(3) / 2, atol=1e-5)  # 8 nearest
        assert np.allclose(d[8:], a, atol=1e-5)  # 4 of the 6 second neighbours
    everything = neighbor_arrays(bcc_conventional(a), GraphSettings(radius=2.9, max_neighbors=None))
    assert len(everything["src"]) == 2 * (8 + 6)


def test_the_short_first_search_gives_the_full_searchs_edges(demo, monkeypatch):
    """Edges and angle pairs from the 5 angstrom first search equal those of the whole 8
    angstrom search, bit for bit: on cells whose 12th neighbour sits in a degenerate shell
    (bcc keeps 4 of its 6 second neighbours, one atom's periodic images in the primitive cell:
    the tie rule decides) and on a simple cubic cell of 4.5 angstrom, whose 6 neighbours inside
    5 angstrom are too few, so the search is redone at 8."""
    from zoo.graphs import neighbors

    radii = []
    search = neighbors._all_pairs
    monkeypatch.setattr(neighbors, "_all_pairs", lambda s, r: radii.append(r) or search(s, r))
    bcc = Structure.from_spacegroup("Im-3m", Lattice.cubic(2.87), ["Fe"], [[0, 0, 0]])
    open_cell = Structure(Lattice.cubic(4.5), ["Po"], [[0, 0, 0]])
    cells = {"bcc": bcc.get_primitive_structure(), "bcc-2": bcc_conventional(),
             "nacl": rocksalt(), "open": open_cell}  # fmt: skip
    cells.update(zip(demo.ids[:12], demo.structures[:12], strict=True))
    settings, searches = GraphSettings(parts=("bond", "angle")), {}
    for name, cell in cells.items():
        radii.clear()
        fast = neighbor_arrays(cell, settings)
        searches[name] = list(radii)
        with monkeypatch.context() as full:
            full.setattr(neighbors, "FIRST_RADIUS", 100.0)  # never below the radius
            whole = neighbor_arrays(cell, settings)
        assert radii[-1] == 8.0
        for key, value in whole.items():
            assert np.array_equal(fast[key], value), (name, key)
    assert searches["bcc"] == searches["bcc-2"] == searches["nacl"] == [5.0]
    assert searches["open"] == [5.0, 8.0]
    assert sum(searches[entry] == [5.0] for entry in demo.ids[:12]) >= 6


def test_rocksalt_edges():
    arrays = neighbor_arrays(rocksalt(5.64), GraphSettings())
    assert len(arrays["src"]) == 8 * 12
    assert np.array_equal(degree(arrays, 8), np.full(8, 12))
    nearest = neighbor_arrays(rocksalt(5.64), GraphSettings(radius=3.0, max_neighbors=None))
    assert len(nearest["src"]) == 8 * 6
    z = nearest["Z"]
    assert (z[nearest["src"]] != z[nearest["dst"]]).all()  # every nearest neighbour: Na-Cl


def contract(structure, settings):
    """Checks every neighbour list must pass (NequIP-style contract)."""
    arrays = neighbor_arrays(structure, settings)
    n = len(structure)
    src, dst, dist, vec = arrays["src"], arrays["dst"], arrays["distance"], arrays["vector"]
    assert src.min() >= 0 and src.max() < n and dst.max() < n
    assert (np.diff(dst) >= 0).all()
    assert np.allclose(np.linalg.norm(vec, axis=1), dist, atol=1e-4)
    assert (dist > 0).all() and (dist <= settings.radius + 1e-6).all()
    # centre + vector is a lattice translate of the neighbour
    frac = structure.lattice.get_fractional_coords(structure.cart_coords[dst] + vec)
    offset = frac - structure.frac_coords[src]
    assert np.allclose(offset, np.round(offset), atol=1e-4)
    for atom in range(n):
        mine = dist[dst == atom]
        assert (np.diff(mine) >= 0).all()
        assert 1 <= len(mine) <= settings.max_neighbors
        # the same distances as the original CGCNN's method (get_all_neighbors, sorted)
        reference = sorted(
            nb.nn_distance for nb in structure.get_all_neighbors(settings.radius)[atom]
        )
        assert np.allclose(mine, reference[: settings.max_neighbors], atol=1e-4)
    return arrays


def test_neighbour_contract_on_demo_set(demo):
    for structure in demo.structures[:20]:
        contract(structure, GraphSettings())
    contract(rocksalt(), GraphSettings(radius=6.0, max_neighbors=20))


def random_rotation(seed=0):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.linalg.det(q))


def per_atom_distances(structure, settings):
    arrays = neighbor_arrays(structure, settings)
    return sorted(
        tuple(np.round(arrays["distance"][arrays["dst"] == i], 4)) for i in range(len(structure))
    )


def test_graph_invariances(demo):
    settings = GraphSettings()
    for structure in [rocksalt(), *demo.structures[:6]]:
        reference = per_atom_distances(structure, settings)
        rotated = Structure(
            Lattice(structure.lattice.matrix @ random_rotation().T),
            structure.species,
            structure.frac_coords,
        )
        shifted = Structure(structure.lattice, structure.species, structure.frac_coords + 0.37)
        assert per_atom_distances(rotated, settings) == reference
        assert per_atom_distances(shifted, settings) == reference
        supercell = structure * (2, 2, 2)
        assert sorted(set(per_atom_distances(supercell, settings))) == sorted(set(reference))


def test_heterograph_layout_of_the_bond_part():
    graph = build_graph(rocksalt(), GraphSettings())
    assert graph.ntypes == [keys.ATOM]
    assert graph.canonical_etypes == [keys.BOND]
    assert graph.num_nodes(keys.ATOM) == 8 and graph.num_edges(keys.BOND) == 96
    assert graph.nodes[keys.ATOM].data[keys.ATOMIC_NUMBER].tolist() == [11] * 4 + [17] * 4
    assert graph.edges[keys.BOND].data[keys.BOND_VECTOR].shape == (96, 3)


def test_store_batch_equals_single_graphs(demo):
    store, _ = build_store(
        demo.ids, demo.structures, GraphSettings(), cache_dir=False, progress=False
    )
    batch = store.batch([4, 0, 9])
    assert batch.batch_size == 3
    singles = [build_graph(demo.structures[i]) for i in (4, 0, 9)]
    assert batch.batch_num_edges(keys.BOND).tolist() == [g.num_edges() for g in singles]
    src, dst = batch.edges(etype=keys.BOND)
    offset = 0
    edges_seen = 0
    for graph in singles:
        s, d = graph.edges()
        e = graph.num_edges()
        assert torch.equal(src[edges_seen : edges_seen + e], s + offset)
        assert torch.equal(dst[edges_seen : edges_seen + e], d + offset)
        offset += graph.num_nodes()
        edges_seen += e
    assert torch.equal(
        batch.edges[keys.BOND].data[keys.DISTANCE],
        torch.cat([g.edata[keys.DISTANCE] for g in singles]),
    )


def test_cache_hit_rebuild_on_corruption_and_new_key(tmp_path, demo, monkeypatch):
    import zoo.graphs.cache as graph_store

    settings = GraphSettings()
    first, _ = build_store(demo.ids, demo.structures, settings, cache_dir=tmp_path, progress=False)
    (graph_file,) = tmp_path.glob("*.bin")
    calls = []
    real_build = graph_store.build_arrays
    monkeypatch.setattr(
        graph_store, "build_arrays", lambda *a, **k: calls.append(1) or real_build(*a, **k)
    )
    cached, _ = build_store(demo.ids, demo.structures, settings, cache_dir=tmp_path, progress=False)
    assert calls == [] and torch.equal(cached.distance, first.distance)
    graph_file.write_bytes(graph_file.read_bytes()[:-100])  # truncate: corrupt
    rebuilt, _ = build_store(
        demo.ids, demo.structures, settings, cache_dir=tmp_path, progress=False
    )
    assert calls == [1] and torch.equal(rebuilt.distance, first.distance)
    build_store(
        demo.ids, demo.structures, GraphSettings(radius=6.0), cache_dir=tmp_path, progress=False
    )
    assert calls == [1, 1] and len(list(tmp_path.glob("*.bin"))) == 2
    moved = [s.copy() for s in demo.structures]
    moved[0].translate_sites([0], [0.01, 0, 0])
    build_store(demo.ids, moved, settings, cache_dir=tmp_path, progress=False)
    assert calls == [1, 1, 1]


def test_two_writers_of_the_same_cache_entry_do_not_collide(tmp_path, demo, monkeypatch):
    """A second process that writes the same cache entry while the first is still writing
    (simulated: the second save runs inside the first) must not break either, and the entry
    must load afterwards."""
    from zoo.graphs import GraphStore

    settings = GraphSettings()
    real_save = GraphStore.save
    writers = []

    def save_with_a_rival(store, path):
        real_save(store, path)
        if not writers:
            writers.append(path)
            build_store(demo.ids, demo.structures, settings, cache_dir=tmp_path, progress=False)

    monkeypatch.setattr(GraphStore, "save", save_with_a_rival)
    first, _ = build_store(demo.ids, demo.structures, settings, cache_dir=tmp_path, progress=False)
    assert len(writers) == 1
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".bin", ".json"]  # no leftovers
    monkeypatch.setattr(GraphStore, "save", real_save)
    cached, _ = build_store(demo.ids, demo.structures, settings, cache_dir=tmp_path, progress=False)
    assert torch.equal(cached.distance, first.distance)


@pytest.mark.slow
def test_parallel_build_equals_serial(demo):
    """Also for an entry that has no graph: its BadInputError comes back from its worker."""
    from pymatgen.core import Lattice, Structure

    structures = (demo.structures * 10)[:520]
    structures[7] = Structure(Lattice.cubic(40.0), ["Cu"], [[0, 0, 0]])  # no neighbour at all
    ids = [f"e{i}" for i in range(len(structures))]
    options = dict(cache_dir=False, progress=False, skip_bad=True)
    serial, skipped = build_store(ids, structures, GraphSettings(), **options)
    parallel, skipped_there = build_store(ids, structures, GraphSettings(), workers=2, **options)
    assert torch.equal(serial.src, parallel.src) and torch.equal(serial.distance, parallel.distance)
    assert skipped_there.items == skipped.items and [e for e, _ in skipped.items] == ["e7"]


def test_angle_part_pairs_bonds_of_the_same_atom():
    settings = GraphSettings(parts=("bond", "angle"), angle_neighbors=4)
    graph = build_graph(rocksalt(), settings)
    assert graph.num_nodes(keys.BOND_NODE) == graph.num_edges(keys.BOND) == 96
    # the 6 nearest bonds of rock salt are one shell, kept whole: 6 * 5 ordered pairs per atom
    assert graph.num_edges(keys.ANGLE) == 8 * 6 * 5
    first, second = graph.edges(etype=keys.ANGLE)
    _, centre = graph.edges(etype=keys.BOND)
    assert torch.equal(centre[first], centre[second]) and (first != second).all()
    vectors = graph.edges[keys.BOND].data[keys.BOND_VECTOR]
    cosine = torch.nn.functional.cosine_similarity(vectors[first], vectors[second])
    # rock salt: the 6 nearest neighbours are octahedral, so angles are 90 or 180 degrees
    assert torch.allclose(
        cosine.abs() * (cosine.abs() > 0.5), (cosine.abs() > 0.5).float(), atol=1e-5
    )
    assert (cosine.abs() < 1e-5).sum() + (cosine.abs() > 1 - 1e-5).sum() == len(cosine)
    # bcc: 8 bonds in the first shell; a cut at 6 keeps all 8, a cut at 2 keeps 8 too
    for limit in (2, 6, 8):
        bcc = build_graph(
            bcc_conventional(), GraphSettings(parts=("bond", "angle"), angle_neighbors=limit)
        )
        assert bcc.num_edges(keys.ANGLE) == 2 * 8 * 7
    # a cut at 9 reaches into the second shell (6 bonds at a), which the 12-bond limit
    # truncates to 4: 12 bonds, 12 * 11 pairs per atom
    bcc = build_graph(bcc_conventional(), GraphSettings(parts=("bond", "angle"), angle_neighbors=9))
    assert bcc.num_edges(keys.ANGLE) == 2 * 12 * 11


def test_crystal_part_links_every_atom_to_its_crystal(demo):
    settings = GraphSettings(parts=("bond", "crystal"))
    store, _ = build_store(
        demo.ids[:3], demo.structures[:3], settings, cache_dir=False, progress=False
    )
    graph = store.batch([2, 0])
    assert graph.num_nodes(keys.CRYSTAL) == 2
    atoms, crystal = graph.edges(etype=keys.ATOM_IN_CRYSTAL)
    sizes = [len(demo.structures[2]), len(demo.structures[0])]
    assert crystal.tolist() == [0] * sizes[0] + [1] * sizes[1]
    assert torch.allclose(
        graph.nodes[keys.CRYSTAL].data[keys.VOLUME],
        torch.tensor([demo.structures[2].volume, demo.structures[0].volume], dtype=torch.float32),
    )


def test_cache_is_keyed_by_graph_parts(tmp_path, demo):
    for parts in [("bond",), ("bond", "angle"), ("bond", "crystal")]:
        build_store(
            demo.ids,
            demo.structures,
            GraphSettings(parts=parts),
            cache_dir=tmp_path,
            progress=False,
        )
    assert len(list(tmp_path.glob("*.bin"))) == 3
    again, _ = build_store(
        demo.ids,
        demo.structures,
        GraphSettings(parts=("bond", "angle")),
        cache_dir=tmp_path,
        progress=False,
    )
    assert again.has_angles and int(again.num_angles.sum()) > 0
