"""Wire contracts shared by the edge and the control plane.

Depends only on msgspec, xxhash and the standard library: the edge image imports this
package and nothing from `control`.
"""
