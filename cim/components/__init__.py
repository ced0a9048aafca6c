"""City components (城市部件): the class catalogue and the built-in procedural models.

``catalogue`` holds the 103 component classes (GB/T 30428.2-2013 管理部件, six 大类) and user classes;
``shapes`` builds a small coloured trimesh scene per class and writes it as GLB.
"""
