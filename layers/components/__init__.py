"""City components (城市部件) in PostGIS: the component layers, user classes,
counts by class and area, and one file per object (一物一档)."""
