// Whether a deck.gl layer has drawn what it will for this view: shared by the viewer page (viewer.js) and
// the one-file HTML export (viewer/notebook.py inlines this file).
//
// loaders.gl's Tileset3D cancels the request of a tile out of sight (refine ADD) but keeps it among its
// requested tiles until the camera moves, so a 3D Tiles layer out of view never says it is loaded: it has
// settled once nothing is pending and what it still lists is out of sight.
window.cimSettled = function cimSettled(layer) {
  if (!layer.props.visible || layer.isLoaded) return true;
  const tiles = layer.state && layer.state.tileset3d;
  return Boolean(tiles && tiles.frameNumber > 0 && tiles._pendingCount === 0 && tiles._requestedTiles.every(
    (tile) => tile.contentAvailable || !tile.isVisible || tile._touchedFrame < tiles.frameNumber));
};
