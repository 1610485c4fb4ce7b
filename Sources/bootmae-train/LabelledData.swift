import ArgumentParser
import Training

// What the classifying commands (finetune, linprobe, knn) need of their data before any work starts.

/// A usage error unless the train split `dataset` of `data` has at least two classes: a classifier of
/// one class answers it for every input, with a loss of 0 and a top-1 of 100% that say nothing.
func requireClasses(_ dataset: any ImageDataset, of data: String) throws {
    let classes = dataset.classes
    guard classes.count < 2 else { return }
    guard let only = classes.first else {
        throw ValidationError("the train split of \(data) has no labels: a classifier needs class subfolders (root/<class>/<image>) "
                              + "or an IDX label file")
    }
    let folder = (dataset as? ImageFolderDataset)?.root ?? ((dataset as? SubsetDataset)?.base as? ImageFolderDataset)?.root ?? data
    throw ValidationError("\(folder) holds one class (\(only)): a classifier needs at least 2 classes to tell apart; "
                          + "add a subfolder of images for each other class (\(folder)/<class>/<image>)")
}
