"""Vector indexes of the spaces: FAISS replicas and Milvus collections, kept from the catalog."""

import warnings

# milvus-lite 2.5 reads its own version through pkg_resources, which warns on every import.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning,
                        module="milvus_lite")
